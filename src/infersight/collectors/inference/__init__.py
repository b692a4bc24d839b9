"""Inference-server metrics (`type: inference`: vLLM, TGI, Triton, SGLang) normalised to one request model."""
from infersight.collectors.inference.collector import Endpoint, InferenceCollector, InferenceConfig
from infersight.collectors.inference.metrics import METRICS
from infersight.collectors.inference.scrape import ScrapeError

__all__ = ["METRICS", "Endpoint", "InferenceCollector", "InferenceConfig", "ScrapeError"]
