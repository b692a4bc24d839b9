"""OTLP/HTTP sender over the standard library: one kept-alive connection, the receiver closing it, a hung send
ended by close(), partial success, and what an endpoint that is no URL does."""
from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse

from infersight.exporters.senders import HttpSender

KEY = "0b7c9e8e-1111-2222-3333-444455556666"


class _Receiver:
    """HTTP/1.1 receiver recording each request's client port; `close_after_response` drops the connection
    after answering without saying so (as a receiver closing idle connections does)."""

    def __init__(self, port: int, body: bytes = b"", close_after_response: bool = False) -> None:
        self.ports: list[int] = []
        self.headers: list[dict[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                outer.ports.append(self.client_address[1])
                outer.headers.append(dict(self.headers))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                if close_after_response:
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(port):
    made: list[_Receiver] = []

    def start(**kw) -> _Receiver:
        made.append(_Receiver(port, **kw))
        return made[-1]
    yield start
    for r in made:
        r.stop()


def test_sends_reuse_one_connection_and_carry_key_and_headers(receiver, port):
    r = receiver()
    sender = HttpSender(f"http://127.0.0.1:{port}", {"Authorization": "Bearer t0k"}, timeout_seconds=2)
    try:
        results = [sender.send(b"\x0a\x00", KEY) for _ in range(3)]
    finally:
        sender.close()
    assert [x.outcome for x in results] == ["ok"] * 3
    assert len(set(r.ports)) == 1, r.ports  # kept alive
    assert r.headers[0]["Idempotency-Key"] == KEY and r.headers[0]["Authorization"] == "Bearer t0k"
    assert r.headers[0]["Content-Type"] == "application/x-protobuf"


def test_a_connection_the_receiver_closed_is_replaced_without_failing_a_send(receiver, port):
    r = receiver(close_after_response=True)
    sender = HttpSender(f"http://127.0.0.1:{port}", {}, timeout_seconds=2)
    try:
        results = []
        for _ in range(3):
            results.append(sender.send(b"", KEY))
            time.sleep(0.05)  # the close reaches us before the next send
    finally:
        sender.close()
    assert [x.outcome for x in results] == ["ok"] * 3
    assert len(set(r.ports)) == 3


def test_partial_success_is_read_from_the_answer(receiver, port):
    answer = ExportMetricsServiceResponse()
    answer.partial_success.rejected_data_points = 4
    answer.partial_success.error_message = "NaN values cannot be stored"
    receiver(body=answer.SerializeToString())
    sender = HttpSender(f"http://127.0.0.1:{port}", {}, timeout_seconds=2)
    try:
        result = sender.send(b"", KEY)
    finally:
        sender.close()
    assert (result.outcome, result.rejected_points, result.detail) == ("ok", 4, "NaN values cannot be stored")


def test_close_ends_a_send_hanging_on_a_silent_receiver(port):
    hang = socket.socket()
    hang.bind(("127.0.0.1", port))
    hang.listen(8)  # accepts, never answers
    sender = HttpSender(f"http://127.0.0.1:{port}", {}, timeout_seconds=30)
    out: list = []
    t = threading.Thread(target=lambda: out.append(sender.send(b"x", KEY)))
    try:
        t.start()
        time.sleep(0.3)
        started = time.monotonic()
        sender.close()
        t.join(5)
        assert not t.is_alive() and time.monotonic() - started < 5
    finally:
        hang.close()
    assert out[0].outcome == "retry" and out[0].reason == "connection"


def test_timeout_and_refused_connection_are_retried(port):
    hang = socket.socket()
    hang.bind(("127.0.0.1", port))
    hang.listen(8)
    try:
        started = time.monotonic()
        result = HttpSender(f"http://127.0.0.1:{port}", {}, timeout_seconds=0.3).send(b"x", KEY)
        assert (result.outcome, result.reason) == ("retry", "timeout") and time.monotonic() - started < 3
    finally:
        hang.close()
    result = HttpSender(f"http://127.0.0.1:{port}", {}, timeout_seconds=1).send(b"x", KEY)
    assert (result.outcome, result.reason) == ("retry", "connection")


@pytest.mark.parametrize("endpoint", ["127.0.0.1:4318", "ftp://127.0.0.1:4318", "http://"])
def test_an_endpoint_that_is_no_http_url_is_refused_up_front(endpoint):
    with pytest.raises(ValueError, match="http"):
        HttpSender(endpoint, {}, timeout_seconds=1)
