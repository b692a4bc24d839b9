"""The simulated fleet: self-hosted nodes on five clouds and API-served deployments.

Every node carries the resource attributes a real agent would detect (semconv `cloud.*`, `host.*`)
plus the purchase option; the instance types and regions are real ones so the price catalog of
`examples/demo/prices.yaml` prices their capacity.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from infersight import semconv

Accelerator = Literal["h100", "h200", "trainium", "inferentia"]
Role = Literal["prefill", "decode", "mixed"]


@dataclass(frozen=True)
class NodeType:
    cloud: str
    region: str
    zone: str
    instance_type: str
    accelerator: Accelerator
    devices: int
    server: Literal["vllm", "sglang"]
    model: str
    role: Role
    capacity_type: Literal["on_demand", "reserved", "spot"] = "on_demand"
    # Requests per second at the diurnal peak.
    peak_rps: float = 12.0


@dataclass(frozen=True)
class Node:
    name: str
    type: NodeType
    index: int

    @property
    def cloud(self) -> str:
        return self.type.cloud

    @property
    def region(self) -> str:
        return self.type.region

    def resource(self) -> dict[str, str]:
        t = self.type
        return {semconv.SERVICE_NAME: "infersight-agent", semconv.HOST_NAME: self.name,
                semconv.HOST_ID: f"demo-{self.name}", semconv.HOST_TYPE: t.instance_type,
                semconv.CLOUD_PROVIDER: t.cloud, semconv.CLOUD_PLATFORM: PLATFORMS.get(t.cloud, t.cloud),
                semconv.CLOUD_REGION: t.region, semconv.CLOUD_ZONE: t.zone,
                semconv.CAPACITY_TYPE: t.capacity_type, "deployment.environment": "demo"}


PLATFORMS = {"aws": "aws_ec2", "azure": "azure_vm", "gcp": "gcp_compute_engine",
             "oracle_cloud": "oracle_cloud_compute"}

LLAMA_70B = "meta-llama/Llama-3.1-70B-Instruct"
LLAMA_8B = "meta-llama/Llama-3.1-8B-Instruct"

# In this order: any prefix of N >= 6 covers every cloud, both GPU generations, prefill and decode
# nodes, both servers and a Trainium node.
NODE_TYPES: tuple[NodeType, ...] = (
    NodeType("aws", "us-east-1", "us-east-1a", "p5.48xlarge", "h100", 8, "vllm", LLAMA_70B, "prefill"),
    NodeType("azure", "eastus", "eastus-1", "Standard_ND96isr_H100_v5", "h100", 8, "vllm", LLAMA_70B, "decode"),
    NodeType("gcp", "us-central1", "us-central1-a", "a3-ultragpu-8g", "h200", 8, "sglang", LLAMA_70B, "decode"),
    NodeType("oracle_cloud", "us-ashburn-1", "AD-1", "BM.GPU.H200.8", "h200", 8, "vllm", LLAMA_70B, "prefill"),
    NodeType("coreweave", "US-EAST-04", "US-EAST-04A", "gd-8xh100ib-i128", "h100", 8, "sglang", LLAMA_70B,
             "decode", "reserved"),
    NodeType("aws", "us-west-2", "us-west-2d", "trn1.32xlarge", "trainium", 16, "vllm", LLAMA_8B, "mixed",
             peak_rps=20.0),
    NodeType("azure", "swedencentral", "swedencentral-1", "Standard_ND96isr_H200_v5", "h200", 8, "vllm",
             LLAMA_70B, "prefill"),
    NodeType("lambda", "us-east-1", "us-east-1", "gpu_8x_h100_sxm5", "h100", 8, "vllm", LLAMA_70B, "decode"),
    NodeType("aws", "us-east-2", "us-east-2b", "inf2.48xlarge", "inferentia", 12, "vllm", LLAMA_8B, "mixed",
             "spot", peak_rps=16.0),
    NodeType("gcp", "europe-west4", "europe-west4-b", "a3-highgpu-8g", "h100", 8, "vllm", LLAMA_70B, "prefill",
             "spot"),
    NodeType("oracle_cloud", "eu-frankfurt-1", "AD-2", "BM.GPU.H100.8", "h100", 8, "sglang", LLAMA_70B, "decode"),
    NodeType("azure", "eastus", "eastus-2", "Standard_ND96isr_H100_v5", "h100", 8, "vllm", LLAMA_70B, "prefill"),
)
DEFAULT_NODES = len(NODE_TYPES)


def build_fleet(nodes: int = DEFAULT_NODES) -> list[Node]:
    """`nodes` nodes: the node types in order, then again (another node of each type) past their count."""
    if nodes < 1:
        raise ValueError("--nodes: at least 1")
    out = []
    for i in range(nodes):
        t = NODE_TYPES[i % len(NODE_TYPES)]
        region = t.region.lower()
        out.append(Node(f"{t.cloud.split('_')[0]}-{region}-{t.accelerator}-{i:02d}", t, i))
    return out


@dataclass(frozen=True)
class ApiDeployment:
    """A model served by a cloud provider's API, seen as GenAI client spans from an application."""

    provider: str  # gen_ai.provider.name
    cloud: str
    region: str
    model: str
    # Requests per second at the diurnal peak (each one span).
    peak_rps: float
    ttft_median_seconds: float
    e2e_median_seconds: float

    @property
    def service(self) -> str:
        return f"chat-app-{self.cloud}"


API_DEPLOYMENTS: tuple[ApiDeployment, ...] = (
    ApiDeployment("azure.ai.openai", "azure", "eastus2", "gpt-4o", 0.04, 0.30, 2.4),
    ApiDeployment("aws.bedrock", "aws", "us-east-1", "anthropic.claude-3-5-sonnet-20240620-v1:0", 0.03, 0.35, 3.1),
    ApiDeployment("gcp.vertex_ai", "gcp", "us-central1", "gemini-1.5-pro-002", 0.03, 0.32, 2.7),
)
