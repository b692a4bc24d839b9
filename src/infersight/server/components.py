"""The components `infersight server` runs, in order: the only module that knows every area of the server.

A new HTTP area adds one entry here (and its tables to `tables`); nothing is found by name.
"""
from __future__ import annotations

from functools import partial

from infersight import webui
from infersight.compare import api as compare_api
from infersight.config import Config
from infersight.cost import report as cost_report
from infersight.gateway import app as gateway
from infersight.gateway import clickhouse_http
from infersight.gateway import grpc as otlp_grpc
from infersight.server import metrics as server_metrics
from infersight.server.component import Attached, Component
from infersight.server.tables import RECEIVER_TABLES, SLO_TABLES
from infersight.slo import prometheus as slo_prometheus
from infersight.slo import service as slo_service
from infersight.storage.base import Storage


def default_components(cfg: Config, storage: Storage) -> list[Component]:
    """OTLP receivers (HTTP with health checks, gRPC), query API, ClickHouse HTTP interface, SLO engine and
    its Prometheus series, the server's /metrics and web UI over one store."""
    return [
        Attached("otlp-receiver", RECEIVER_TABLES, partial(gateway.attach_receiver, cfg=cfg.server, storage=storage)),
        Attached("otlp-grpc", (), partial(otlp_grpc.attach, cfg=cfg.server)),
        Attached("query-api", (), partial(gateway.attach_query, cfg=cfg.server, storage=storage)),
        Attached("clickhouse-http", (), partial(clickhouse_http.attach, cfg=cfg.server, storage=storage)),
        Attached("slo-engine", SLO_TABLES, partial(slo_service.attach, cfg=cfg, storage=storage)),
        Attached("compare", (), partial(compare_api.attach, cfg=cfg, storage=storage)),  # after slo-engine: SIGHUP
        Attached("slo-prometheus", (), partial(slo_prometheus.attach, engine_key=slo_service.ENGINE)),
        Attached("server-metrics", (), server_metrics.attach),
        Attached("cost-api", (), partial(cost_report.attach, cfg=cfg, storage=storage)),
        Attached("web-ui", (), partial(webui.attach, cfg=cfg, storage=storage)),
    ]
