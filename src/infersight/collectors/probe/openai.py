"""The `openai` chat-completions dialect (streamed) and the sync HTTP transport it runs on.

One dialect covers every OpenAI-compatible endpoint: OpenAI, Azure OpenAI's v1 API
(`https://<resource>.openai.azure.com/openai/v1`), Bedrock's, Vertex's and OCI's OpenAI-compatible
endpoints, vLLM, SGLang and TGI's Messages API. `azure` is Azure's deployment-path form:
`<base>/openai/deployments/<deployment>/chat/completions?api-version=<v>`.

`probe()` sends one streamed request and reads the Server-Sent Events: time to response headers,
time to the first *content* delta (a role-only first chunk is not a token), time per output token,
end-to-end, usage, and what the provider's headers say (serving region, request id, remaining
rate limits, Retry-After). It never raises for a failed probe: the error class is in the result.
"""
from __future__ import annotations

import http.client
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import quote, urlsplit

MAX_LINE_BYTES = 1024 * 1024
REQUEST_ID_HEADERS = ("x-request-id", "apim-request-id", "x-amzn-requestid", "x-ms-request-id", "opc-request-id",
                      "x-goog-request-id")


class Response(Protocol):
    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...  # lower-case names

    def readline(self) -> bytes: ...

    def close(self) -> None: ...


class Transport(Protocol):
    """Sync HTTP POST that returns once the headers are in and streams the body line by line."""

    def post(self, url: str, headers: Mapping[str, str], body: bytes, timeout: float) -> Response: ...


class ConnectFailed(Exception):
    """The connection (DNS, TCP, TLS) could not be set up."""


@dataclass
class _HttpResponse:
    conn: http.client.HTTPConnection
    resp: http.client.HTTPResponse
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.status = self.resp.status
        self.headers = {k.lower(): v for k, v in self.resp.getheaders()}

    def readline(self) -> bytes:
        return self.resp.readline(MAX_LINE_BYTES)

    def close(self) -> None:
        self.conn.close()


class HttpTransport:
    """`http.client` without proxies; `timeout` is the socket timeout of connect and of each read."""

    def post(self, url: str, headers: Mapping[str, str], body: bytes, timeout: float) -> Response:
        parts = urlsplit(url)
        cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        conn = cls(parts.hostname or "", parts.port, timeout=timeout)
        try:
            conn.connect()
        except TimeoutError:
            conn.close()
            raise
        except OSError as err:
            conn.close()
            raise ConnectFailed(str(err)) from None
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            conn.request("POST", path, body=body, headers=dict(headers))
            return _HttpResponse(conn, conn.getresponse())
        except BaseException:
            conn.close()
            raise


@dataclass
class ProbeResult:
    """One probe as measured; times in seconds from the request start, None when not reached."""

    status: int | None = None
    error_type: str | None = None
    error: str = ""
    time_to_headers: float | None = None
    ttft: float | None = None
    tpot: float | None = None
    duration: float = 0.0
    input_tokens: int | None = None
    output_tokens: int | None = None
    content_chunks: int = 0
    response_model: str | None = None
    serving_region: str | None = None
    request_id: str | None = None
    remaining_requests: float | None = None
    remaining_tokens: float | None = None
    retry_after_seconds: float | None = None

    @property
    def ok(self) -> bool:
        return self.error_type is None


def chat_url(dialect: str, base_url: str, deployment: str | None, api_version: str | None) -> str:
    base = base_url.rstrip("/")
    if dialect == "azure":
        return f"{base}/openai/deployments/{quote(deployment or '', safe='')}/chat/completions" \
               f"?api-version={quote(api_version or '', safe='')}"
    return f"{base}/chat/completions"


def chat_body(model: str | None, prompt: str, max_tokens: int, include_usage: bool) -> bytes:
    body: dict = {"messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens, "stream": True}
    if model:
        body["model"] = model
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    return json.dumps(body).encode()


def error_class(status: int) -> str:
    if status == 429:
        return "429"
    return "5xx" if status >= 500 else "4xx"


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


def read_headers(result: ProbeResult, headers: Mapping[str, str]) -> None:
    result.serving_region = headers.get("x-ms-region") or None
    result.request_id = next((headers[h] for h in REQUEST_ID_HEADERS if headers.get(h)), None)
    result.remaining_requests = _number(headers.get("x-ratelimit-remaining-requests"))
    result.remaining_tokens = _number(headers.get("x-ratelimit-remaining-tokens"))
    ms = _number(headers.get("retry-after-ms"))
    result.retry_after_seconds = ms / 1000 if ms is not None else _number(headers.get("retry-after"))
    # Bedrock reports token counts in headers; the usage block, when present, wins.
    result.input_tokens = _int(headers.get("x-amzn-bedrock-input-token-count"))
    result.output_tokens = _int(headers.get("x-amzn-bedrock-output-token-count"))


def _int(value: str | None) -> int | None:
    n = _number(value)
    return int(n) if n is not None else None


def events(resp: Response) -> Iterator[str]:
    """The `data` of each Server-Sent Event (multi-line data joined by newlines); comments skipped."""
    data: list[str] = []
    while True:
        raw = resp.readline()
        if not raw:
            if data:
                yield "\n".join(data)
            return
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not line:
            if data:
                yield "\n".join(data)
                data = []
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))


def _has_content(delta: Mapping) -> bool:
    return bool(delta.get("content") or delta.get("reasoning_content") or delta.get("tool_calls"))


def probe(transport: Transport, url: str, headers: Mapping[str, str], body: bytes, timeout: float,
          clock: Callable[[], float]) -> ProbeResult:
    """One streamed chat completion, measured; `timeout` bounds the whole probe, not only each read."""
    r = ProbeResult()
    start = clock()
    deadline = start + timeout
    resp: Response | None = None
    try:
        resp = transport.post(url, {**headers, "Content-Type": "application/json",
                                    "Accept": "text/event-stream"}, body, timeout)
        r.time_to_headers = clock() - start
        r.status = resp.status
        read_headers(r, resp.headers)
        if resp.status >= 400:
            r.error_type = error_class(resp.status)
            r.error = _error_text(resp)
            return r
        _read_stream(r, resp, start, deadline, clock)
    except ConnectFailed as err:
        r.error_type, r.error = "connect", str(err)
    except TimeoutError:
        r.error_type, r.error = "timeout", f"no answer within {timeout:g} s"
    except (http.client.IncompleteRead, ConnectionError, http.client.HTTPException) as err:
        if r.status is None:
            r.error_type, r.error = "connect", f"{type(err).__name__}: {err}"
        else:
            r.error_type, r.error = "stream_cut", f"{type(err).__name__}: {err}"
    except OSError as err:
        r.error_type, r.error = "connect", str(err)
    finally:
        r.duration = clock() - start
        if resp is not None:
            resp.close()
    return r


def _error_text(resp: Response) -> str:
    try:
        text = resp.readline()[:500].decode("utf-8", "replace").strip()
    except (OSError, http.client.HTTPException):
        return ""
    try:
        err = json.loads(text).get("error")
        return str(err.get("message") or err.get("code")) if isinstance(err, dict) else text
    except (ValueError, AttributeError):
        return text


def _read_stream(r: ProbeResult, resp: Response, start: float, deadline: float, clock: Callable[[], float]) -> None:
    done = finished = False
    first = last = None
    for data in events(resp):
        now = clock()
        if now > deadline:
            raise TimeoutError
        if data.strip() == "[DONE]":
            done = True
            break
        try:
            chunk = json.loads(data)
        except ValueError:
            r.error_type, r.error = "invalid_response", f"not JSON: {data[:100]!r}"
            return
        if not isinstance(chunk, dict):
            r.error_type, r.error = "invalid_response", f"not a chunk object: {data[:100]!r}"
            return
        if chunk.get("error"):
            err = chunk["error"]
            r.error_type = "stream_error"
            r.error = str(err.get("message") if isinstance(err, dict) else err)
            return
        r.response_model = chunk.get("model") or r.response_model
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            r.input_tokens = _int(str(usage.get("prompt_tokens", ""))) or r.input_tokens
            r.output_tokens = _int(str(usage.get("completion_tokens", ""))) or r.output_tokens
        for choice in chunk.get("choices") or ():
            if _has_content(choice.get("delta") or {}):
                last = now
                if first is None:
                    first = now
                    r.ttft = now - start
                r.content_chunks += 1
            if choice.get("finish_reason"):
                finished = True
    if not (done or finished):
        r.error_type, r.error = "stream_cut", "the stream ended before [DONE] or a finish_reason"
        return
    n = r.output_tokens or r.content_chunks
    if first is not None and last is not None and n > 1:
        r.tpot = (last - first) / (n - 1)
