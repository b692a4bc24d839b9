"""The Neuron collector's published metric list (docs/collectors/neuron.md).

`hw.status` and `hw.errors` are the shared accelerator-health specs of `collectors.hw`; the rest
are `infersight.neuron.*`, per Neuron application (runtime pid and tag) unless named otherwise.
"""
from __future__ import annotations

from infersight import semconv
from infersight.collectors.base import MetricSpec
from infersight.collectors.hw import HW_ERRORS, HW_STATUS

RT = ("process.pid", "infersight.neuron.runtime.tag")
MODEL = RT + ("infersight.neuron.model.name", "infersight.neuron.model.uuid", "infersight.neuron.model.id")
EXECUTIONS = MetricSpec("infersight.neuron.execution.count", "counter", "{execution}",
                        "Executions by outcome (completed, completed_with_err, timed_out, ...)",
                        RT + ("infersight.neuron.execution.outcome",))
EXEC_ERRORS = MetricSpec("infersight.neuron.execution.errors", "counter", "{error}",
                         "Execution errors by class (generic, numerical, transient, model, runtime, hardware)",
                         RT + ("error.type",))
LATENCY = MetricSpec("infersight.neuron.execution.latency", "gauge", "s",
                     "Latency percentile of the latest window: total (runtime) or device only",
                     RT + ("infersight.neuron.latency.kind", "infersight.neuron.latency.percentile"))
CORE_UTIL = MetricSpec("infersight.neuron.core.utilization", "gauge", "1", "NeuronCore utilisation",
                       RT + ("infersight.neuron.core", "k8s.pod.name", "k8s.namespace.name"))
CORE_FLOPS = MetricSpec("infersight.neuron.core.flops", "gauge", "{flop}/s",
                        "Floating-point operations per second of a NeuronCore", RT + ("infersight.neuron.core",))
MEMORY = MetricSpec("infersight.neuron.memory.usage", "updowncounter", "By",
                    "Memory a Neuron application uses, by location (host, neuron_device), category and "
                    "NeuronCore; sum the categories for totals",
                    RT + ("infersight.neuron.memory.location", "infersight.neuron.memory.category",
                          "infersight.neuron.core"))
MODEL_MEMORY = MetricSpec("infersight.neuron.model.memory.usage", "updowncounter", "By",
                          "Memory of a loaded model's subgraph by location",
                          MODEL + ("infersight.neuron.model.subgraph", "infersight.neuron.core",
                                   "infersight.neuron.device", "infersight.neuron.memory.location"))
MODEL_RUNNING = MetricSpec("infersight.neuron.model.running", "gauge", "1", "1 while a loaded model is started",
                           MODEL)
RT_CPU = MetricSpec("infersight.neuron.runtime.cpu.utilization", "gauge", "1",
                    "vCPU share used by a Neuron application, by mode (user, system)", RT + ("cpu.mode",))
DOCUMENTS = MetricSpec("infersight.neuron.monitor.documents", "counter", "{document}",
                       "neuron-monitor documents read, by status (ok, malformed)",
                       ("infersight.neuron.document.status",))
RESTARTS = MetricSpec("infersight.neuron.monitor.restarts", "counter", "{restart}",
                      "Times neuron-monitor exited and was started again")
UP = MetricSpec(semconv.NEURON_MONITOR_UP, "gauge", "1", "1 while neuron-monitor is running")
DOCUMENT_AGE = MetricSpec("infersight.neuron.monitor.document.age", "gauge", "s",
                          "Seconds since neuron-monitor's last document (since its start before the first); "
                          "only while it runs")
GROUP_ERRORS = MetricSpec("infersight.neuron.monitor.errors", "counter", "{window}",
                          "Windows in which a metric group reported an error string",
                          RT + ("infersight.neuron.group", "error.type"))
METRICS = (HW_STATUS, HW_ERRORS, EXECUTIONS, EXEC_ERRORS, LATENCY, CORE_UTIL, CORE_FLOPS, MEMORY, MODEL_MEMORY,
           MODEL_RUNNING, RT_CPU, DOCUMENTS, RESTARTS, UP, DOCUMENT_AGE, GROUP_ERRORS)
