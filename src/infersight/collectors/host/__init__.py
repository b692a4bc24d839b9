"""Host metrics (`type: host`); `HostCollector` is the entry point."""
from infersight.collectors.host.collector import HostCollector, HostConfig
from infersight.collectors.host.metrics import METRICS

__all__ = ["METRICS", "HostCollector", "HostConfig"]
