"""Inference-server collectors (vLLM, TGI, Triton, SGLang) normalised to one request model."""
from infersight.collectors.inference.collector import Endpoint, InferenceCollector, InferenceConfig, ScrapeError

__all__ = ["Endpoint", "InferenceCollector", "InferenceConfig", "ScrapeError"]
