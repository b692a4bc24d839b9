"""AWS Neuron devices through neuron-monitor (`type: neuron`); `NeuronCollector` is the entry point."""
from infersight.collectors.neuron.collector import NeuronCollector, NeuronConfig
from infersight.collectors.neuron.metrics import METRICS
from infersight.collectors.neuron.wire import Report, parse_document

__all__ = ["METRICS", "NeuronCollector", "NeuronConfig", "Report", "parse_document"]
