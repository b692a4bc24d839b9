"""`infersight demo`: a simulated multi-cloud inference fleet sent through the real agent → OTLP → gateway path.

- `fleet`: which nodes exist (cloud, region, instance type, accelerators, server, model, prefill/decode role)
  and the API-served deployments (Azure OpenAI, Bedrock, Vertex AI).
- `workload`: the request model (diurnal load, per-cloud TTFT/TPOT/e2e distributions, tokens, cache hits)
  rendered as vLLM/SGLang expositions and neuron-monitor documents.
- `incidents`: the scripted incidents and what each does to the workload and the hardware.
- `sources`: per node, the real collectors over their injected data sources (NVML replay double,
  neuron-monitor documents through `feed`, expositions through the inference collector's `fetch`).
- `backfill`: past timestamps, collected and encoded by the agent's own encoder and sender.
- `sink`: the loopback webhook receiver whose alerts the UI can show.
- `runner`: the composition (server, sink, backfill, live agents, Ctrl-C).
"""
