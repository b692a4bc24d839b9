"""Configuration: one YAML file read once into frozen pydantic models.

Components receive these typed objects; none of them reads the environment.
`load_config` is the only place that applies the standard `OTEL_*` variables.

The node agent reads a file through `AgentFile` (`load_agent_file`): only the sections it uses are
validated and built, and the server's (`server`, `slo`, `cost`, `compare`; `infersight config check` validates them)
are skipped, so the agent process never imports the SLO, cost and compare settings nor builds the server's models.
Every model's validator is built when first used (`defer_build`), not at import.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

if TYPE_CHECKING:
    from infersight.compare.settings import CompareSettings
    from infersight.cost.settings import CostSettings
    from infersight.slo.settings import SloSettings


class ConfigError(Exception):
    """A configuration problem; the message names the file and the key."""


class Strict(BaseModel):
    """Base for every config model: immutable, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class ResourceConfig(Strict):
    service_name: str = "infersight-agent"
    attributes: dict[str, str] = Field(default_factory=dict)
    # Cloud instance-metadata detection is opt-in: it talks to a link-local address.
    detect_cloud: bool = False
    cloud_metadata_base_url: str | None = None
    cloud_metadata_timeout_seconds: float = 0.5


class ExporterConfig(Strict):
    endpoint: str = "http://127.0.0.1:4318"
    protocol: Literal["http/protobuf", "grpc"] = "http/protobuf"
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    timeout_seconds: float = 10.0
    spool_dir: Path = Path("/var/lib/infersight/spool")
    max_spool_bytes: int = 256 * 1024 * 1024
    retry_interval_seconds: float = 5.0
    export_interval_seconds: float = 10.0
    # 401/403: a credentials problem, not a bad batch; the spool is kept and retried this slowly.
    auth_retry_interval_seconds: float = Field(60.0, gt=0)
    # Batches the receiver refused for good are set aside in `<spool_dir>/rejected/`, oldest dropped past these.
    max_rejected_bytes: int = Field(32 * 1024 * 1024, ge=0)
    max_rejected_batches: int = Field(1000, ge=0)


class AgentConfig(Strict):
    exporter: ExporterConfig = Field(default_factory=ExporterConfig)
    self_metrics_interval_seconds: float = 30.0
    # SIGTERM to exit: spool what is buffered, then drain only for what is left of this.
    shutdown_timeout_seconds: float = Field(5.0, gt=0)


class CollectorConfig(Strict):
    """Fields every collector entry has; each collector subclasses it with its own options."""

    type: str
    name: str | None = None
    interval_seconds: float = Field(10.0, gt=0)
    timeout_seconds: float = Field(5.0, gt=0)


class ClickHouseConfig(Strict):
    url: str
    user: str = "default"
    password: SecretStr = SecretStr("")
    verify_tls: bool = True


class StorageConfig(Strict):
    backend: Literal["embedded", "clickhouse"] = "embedded"
    database: str = "otel"
    clickhouse: ClickHouseConfig | None = None
    # Days to keep rows, per table short name (e.g. traces, logs, metrics_gauge); 0 = forever.
    ttl_days: dict[str, int] = Field(default_factory=dict)
    cluster: str | None = None


class QueryApiConfig(Strict):
    max_rows: int = 10_000
    max_execution_seconds: float = 10.0
    max_memory_bytes: int = Field(1024 * 1024 * 1024, gt=0)  # per query (ClickHouse max_memory_usage)
    max_result_bytes: int = Field(32 * 1024 * 1024, gt=0)  # the block and the JSON answer; over it: 413
    max_concurrent_queries: int = Field(2, gt=0)  # more at once: 429


class TokenConfig(Strict):
    """One client's bearer token and what it may do: `ingest` (POST /v1/*), `read` (GET APIs, the query API,
    the UI's data), `admin` (silences, SLO reload, notify test). A `token_file` is re-read when it changes,
    so a token rotates without a restart."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    scopes: tuple[Literal["ingest", "read", "admin"], ...] = Field(min_length=1)
    token: SecretStr | None = None
    token_file: Path | None = None

    @model_validator(mode="after")
    def _one_source(self) -> TokenConfig:
        if (self.token is None) == (self.token_file is None):
            raise ValueError("set exactly one of token and token_file")
        if self.token is not None and not self.token.get_secret_value().strip():
            raise ValueError("token: must not be empty")
        return self


class ServerConfig(Strict):
    listen: str = "127.0.0.1:4318"
    # OTLP/gRPC (null: off) and the read-only ClickHouse HTTP interface (null: off). Left at their defaults,
    # a port already taken is logged and that listener skipped; set explicitly, it stops the server.
    grpc_listen: str | None = "127.0.0.1:4317"
    clickhouse_listen: str | None = "127.0.0.1:8123"
    data_dir: Path = Path("./data")
    # One token with every scope (kept for compatibility); `tokens` gives each client its own scopes.
    auth_token: SecretStr | None = None
    tokens: tuple[TokenConfig, ...] = ()
    # Host header values served ('name' any port, 'name:port', '*' any Host). Default: on a loopback listen
    # address the loopback names and that address (stops DNS rebinding); off loopback any Host, since a
    # token is required there and a browser never sends it to a foreign origin.
    allowed_hosts: tuple[str, ...] | None = None
    # Failed bearer-token attempts per remote address before 429 until the window ends.
    auth_max_failures: int = Field(10, ge=1)
    auth_failure_window_seconds: float = Field(60.0, gt=0)
    max_body_bytes: int = 64 * 1024 * 1024
    max_queue_rows: int = 1_000_000
    # Adaptive insert size: a flush starts once the queue holds its target (the arrival rate over half
    # the interval, within [flush_rows, flush_max_rows]), when requests stop arriving for
    # flush_linger_seconds with at least flush_rows queued, or flush_interval_seconds after its first row.
    flush_rows: int = Field(10_000, ge=1)
    flush_max_rows: int = Field(200_000, ge=1)
    flush_interval_seconds: float = Field(1.0, gt=0)
    flush_linger_seconds: float = Field(0.005, ge=0)
    # A flush's tables inserted side by side, each on a connection of its own (1: one after the other).
    parallel_inserts: int = Field(4, ge=1)
    # Decoded attribute sets kept for reuse across requests; cleared (between requests) past this.
    attribute_cache_bytes: int = Field(64 * 1024 * 1024, ge=0)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    query: QueryApiConfig = Field(default_factory=QueryApiConfig)
    external_url: str | None = None

    @field_validator("tokens")
    @classmethod
    def _unique_names(cls, value: tuple[TokenConfig, ...]) -> tuple[TokenConfig, ...]:
        names = [t.name for t in value]
        if len(set(names)) != len(names):
            raise ValueError(f"token names must be unique: {names}")
        return value


class AgentSections(Strict):
    """The sections the node agent reads; `Config` (the whole file) and `AgentFile` (the agent's view) extend it."""

    resource: ResourceConfig = Field(default_factory=ResourceConfig)
    agent: AgentConfig = Field(default_factory=AgentConfig)
    collectors: tuple[CollectorConfig, ...] = ()

    @field_validator("collectors", mode="before")
    @classmethod
    def _typed_collectors(cls, value: Any) -> Any:
        from infersight.collectors.registry import collector_class

        if not isinstance(value, (list, tuple)):
            raise ValueError("must be a list of collector entries")
        out = []
        for i, entry in enumerate(value):
            if isinstance(entry, CollectorConfig):
                out.append(entry)
                continue
            if not isinstance(entry, Mapping) or "type" not in entry:
                raise ValueError(f"collectors.{i}: each collector entry needs a 'type'")
            try:
                out.append(collector_class(entry["type"]).Config.model_validate(entry))
            except ValidationError as err:
                raise ValueError("\n".join(_error_lines(err, f"collectors.{i}."))) from None
        return tuple(out)


SERVER_SECTIONS = ("server", "slo", "cost", "compare")


class AgentFile(AgentSections):
    """A configuration file as the node agent reads it: the server's sections are left out unvalidated."""

    @model_validator(mode="before")
    @classmethod
    def _skip_server_sections(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            return {k: v for k, v in data.items() if k not in SERVER_SECTIONS}
        return data


def _server_settings() -> dict[str, type[BaseModel]]:
    from infersight.compare.settings import CompareSettings
    from infersight.cost.settings import CostSettings
    from infersight.slo.settings import SloSettings

    return {"SloSettings": SloSettings, "CostSettings": CostSettings, "CompareSettings": CompareSettings}


def _default(name: str) -> Any:
    return _server_settings()[name]()


class Config(AgentSections):
    """The whole file. The SLO, cost and compare settings are imported when Config is first built or used."""

    server: ServerConfig = Field(default_factory=ServerConfig)
    slo: SloSettings = Field(default_factory=lambda: _default("SloSettings"))
    cost: CostSettings = Field(default_factory=lambda: _default("CostSettings"))
    compare: CompareSettings = Field(default_factory=lambda: _default("CompareSettings"))

    @classmethod
    def model_rebuild(cls, *, force: bool = False, raise_errors: bool = True, _parent_namespace_depth: int = 2,
                      _types_namespace: Mapping[str, Any] | None = None) -> bool | None:
        """pydantic calls this to build a deferred model on its first use: resolve the lazily imported sections."""
        return super().model_rebuild(force=force, raise_errors=raise_errors,
                                     _parent_namespace_depth=_parent_namespace_depth,
                                     _types_namespace={**_server_settings(), **(_types_namespace or {})})


def _error_lines(err: ValidationError, prefix: str = "") -> list[str]:
    lines = []
    for e in err.errors():
        loc = prefix + ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            lines.append(f"unknown key '{loc}'")
        elif e["type"] == "value_error" and loc == "collectors":
            lines.extend(str(e["ctx"]["error"]).splitlines())  # already names collectors.<i>.<key>
        else:
            lines.append(f"{loc}: {e['msg']}")
    return lines


def _format_errors(err: ValidationError, source: str) -> str:
    return "\n".join(f"{source}: {line}" for line in _error_lines(err))


def _otel_env(data: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """Overlay standard OTEL_* variables (endpoint, headers, resource attributes, service name)."""
    agent = dict(data.get("agent") or {})
    exporter = dict(agent.get("exporter") or {})
    endpoint = env.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if endpoint:
        exporter["endpoint"] = endpoint.rstrip("/").removesuffix("/v1/metrics")
    headers = env.get("OTEL_EXPORTER_OTLP_METRICS_HEADERS") or env.get("OTEL_EXPORTER_OTLP_HEADERS")
    if headers:
        merged = dict(exporter.get("headers") or {})
        merged.update(_kv_list(headers))
        exporter["headers"] = merged
    protocol = env.get("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
    if protocol:
        exporter["protocol"] = protocol
    if exporter:
        agent["exporter"] = exporter
        data["agent"] = agent
    resource = dict(data.get("resource") or {})
    if env.get("OTEL_RESOURCE_ATTRIBUTES"):
        attrs = dict(resource.get("attributes") or {})
        attrs.update(_kv_list(env["OTEL_RESOURCE_ATTRIBUTES"]))
        resource["attributes"] = attrs
    if env.get("OTEL_SERVICE_NAME"):
        resource["service_name"] = env["OTEL_SERVICE_NAME"]
    if resource:
        data["resource"] = resource
    return data


def _kv_list(text: str) -> dict[str, str]:
    from urllib.parse import unquote

    out = {}
    for item in text.split(","):
        if "=" in item:
            k, v = item.split("=", 1)
            out[unquote(k.strip())] = unquote(v.strip())
    return out


M = TypeVar("M", bound=AgentSections)


def parse_config(data: Mapping[str, Any] | None, source: str = "<config>",
                 env: Mapping[str, str] | None = None) -> Config:
    return _parse(data, source, env, Config)


def _parse(data: Mapping[str, Any] | None, source: str, env: Mapping[str, str] | None, model: type[M]) -> M:
    raw = dict(data or {})
    if env is not None:
        raw = _otel_env(raw, env)
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, source)) from None
    except (KeyError, ValueError) as err:  # unknown collector type raised outside pydantic
        raise ConfigError(f"{source}: {err}") from None


def load_config(path: str | Path | None, env: Mapping[str, str] | None = None) -> Config:
    """Read FILE (or defaults when None) and apply OTEL_* from env (os.environ by default)."""
    return _load(path, env, Config)


def load_agent_file(path: str | Path | None, env: Mapping[str, str] | None = None) -> AgentFile:
    """`load_config` for the node agent: the server's sections are skipped, not validated."""
    return _load(path, env, AgentFile)


def _load(path: str | Path | None, env: Mapping[str, str] | None, model: type[M]) -> M:
    env = os.environ if env is None else env
    if path is None:
        return _parse({}, "<defaults>", env, model)
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except OSError as err:
        raise ConfigError(f"{p}: cannot read: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{p}: invalid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: top level must be a mapping")
    return _parse(data, str(p), env, model)


def effective_config(cfg: Config) -> dict[str, Any]:
    """The configuration as plain data with secrets masked (for `config check`)."""
    return cfg.model_dump(mode="json")
