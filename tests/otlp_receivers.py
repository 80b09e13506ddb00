"""Real OTLP receivers for tests: gRPC (grpcio) and HTTP/protobuf (http.server).

Both listen on 127.0.0.1 on a free port, keep every ExportTraceServiceRequest
(and ExportMetricsServiceRequest) they accept, and can be told to refuse
requests (``fail_with``) to simulate a collector in trouble::

    with GrpcReceiver() as receiver:
        run_program(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint)
        assert receiver.wait_for(8, timeout=10)
        spans = receiver.spans()
"""

from __future__ import annotations

import gzip
import os
import socket
import threading
import time
import zlib
from concurrent import futures
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

ExportTraceServiceRequest = trace_service_pb2.ExportTraceServiceRequest
ExportTraceServiceResponse = trace_service_pb2.ExportTraceServiceResponse
ExportMetricsServiceRequest = metrics_service_pb2.ExportMetricsServiceRequest
ExportMetricsServiceResponse = metrics_service_pb2.ExportMetricsServiceResponse


def value(v: AnyValue) -> Any:
    """The Python value of an OTLP AnyValue."""
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return attributes(v.kvlist_value.values)
    return getattr(v, kind)


def attributes(kvs: Any) -> dict[str, Any]:
    """OTLP attributes (a repeated KeyValue) as a dict."""
    out: dict[str, Any] = {}
    kv: KeyValue
    for kv in kvs:
        out[kv.key] = value(kv.value)
    return out


@dataclass(frozen=True)
class ReceivedSpan:
    """One received span with what surrounds it in the request."""

    resource: dict[str, Any]
    scope: str
    span: Span

    @property
    def name(self) -> str:
        return str(self.span.name)

    @property
    def attributes(self) -> dict[str, Any]:
        return attributes(self.span.attributes)


def free_port() -> int:
    """A port nothing listens on (it was free a moment ago)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Receiver:
    """What both receivers share: the requests kept, waiting for spans, faults."""

    #: Set to answer every request with an error: a ``grpc.StatusCode`` for the
    #: gRPC receiver, an HTTP status (e.g. 503) for the HTTP one. None accepts.
    fail_with: Any = None
    #: The OTEL_EXPORTER_OTLP_PROTOCOL value that reaches this receiver.
    protocol = ""

    def __init__(self, metrics: bool = True) -> None:
        self.endpoint = ""
        #: False: a traces-only backend (Jaeger, Tempo): metrics are refused.
        self.takes_metrics = metrics
        self.requests: list[ExportTraceServiceRequest] = []
        self.metric_requests: list[ExportMetricsServiceRequest] = []
        #: Requests answered with ``fail_with`` (not in ``requests``).
        self.rejected = 0
        self._cond = threading.Condition()

    @property
    def traces_endpoint(self) -> str:
        """What OTEL_EXPORTER_OTLP_TRACES_ENDPOINT would be (a full URL for HTTP)."""
        return self.endpoint

    def _accept(self, request: ExportTraceServiceRequest) -> None:
        with self._cond:
            self.requests.append(request)
            self._cond.notify_all()

    def _accept_metrics(self, request: ExportMetricsServiceRequest) -> None:
        with self._cond:
            self.metric_requests.append(request)
            self._cond.notify_all()

    def metrics(self) -> dict[str, list[Any]]:
        """Every metric received, by name: its Metric messages, in order."""
        with self._cond:
            requests = list(self.metric_requests)
        found: dict[str, list[Any]] = {}
        for request in requests:
            for rm in request.resource_metrics:
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        found.setdefault(metric.name, []).append(metric)
        return found

    def _reject(self) -> None:
        with self._cond:
            self.rejected += 1
            self._cond.notify_all()

    def spans(self) -> list[ReceivedSpan]:
        with self._cond:
            requests = list(self.requests)
        return [
            ReceivedSpan(attributes(rs.resource.attributes), ss.scope.name, span)
            for request in requests
            for rs in request.resource_spans
            for ss in rs.scope_spans
            for span in ss.spans
        ]

    def span_count(self) -> int:
        with self._cond:
            return self._count()

    def _count(self) -> int:
        return sum(
            len(ss.spans) for req in self.requests for rs in req.resource_spans for ss in rs.scope_spans
        )

    def wait_for(self, n_spans: int, timeout: float = 10.0) -> bool:
        """Wait until at least ``n_spans`` spans have arrived; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._count() < n_spans:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Receiver:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, receiver: GrpcReceiver) -> None:
        self.receiver = receiver

    def Export(self, request: ExportTraceServiceRequest, context: grpc.ServicerContext) -> Any:
        self.receiver.metadata.append(dict(context.invocation_metadata()))
        status = self.receiver.fail_with
        if status is not None:
            self.receiver._reject()
            context.abort(status, f"test receiver told to fail with {status.name}")
        self.receiver._accept(request)
        return ExportTraceServiceResponse()


class _MetricsService(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, receiver: GrpcReceiver) -> None:
        self.receiver = receiver

    def Export(self, request: ExportMetricsServiceRequest, context: grpc.ServicerContext) -> Any:
        status = self.receiver.fail_with
        if status is not None:
            self.receiver._reject()
            context.abort(status, f"test receiver told to fail with {status.name}")
        self.receiver._accept_metrics(request)
        return ExportMetricsServiceResponse()


class GrpcReceiver(Receiver):
    """An OTLP/gRPC trace receiver; ``endpoint`` is ``http://127.0.0.1:PORT``."""

    protocol = "grpc"

    def __init__(self, metrics: bool = True) -> None:
        super().__init__(metrics)
        self.metadata: list[dict[str, Any]] = []
        self._server: grpc.Server | None = None

    def start(self) -> None:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(self), server)
        if self.takes_metrics:
            metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_MetricsService(self), server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self._server = server
        self.endpoint = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None).wait()
            self._server = None


class _Handler(BaseHTTPRequestHandler):
    server: _HttpServer

    def do_POST(self) -> None:
        receiver = self.server.receiver
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        receiver.headers.append(dict(self.headers.items()))
        wanted = ("/v1/traces", "/v1/metrics") if receiver.takes_metrics else ("/v1/traces",)
        if self.path not in wanted:
            return self._answer(404, b"not found", "text/plain")
        if self.headers.get_content_type() != "application/x-protobuf":
            return self._answer(415, b"expected application/x-protobuf", "text/plain")
        if receiver.fail_with is not None:
            receiver._reject()
            return self._answer(int(receiver.fail_with), b"test receiver told to fail", "text/plain")
        encoding = (self.headers.get("Content-Encoding") or "").lower()
        try:
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
            if self.path == "/v1/metrics":
                metrics = ExportMetricsServiceRequest.FromString(body)
            else:
                request = ExportTraceServiceRequest.FromString(body)
        except Exception as exc:
            return self._answer(400, f"bad request: {exc}".encode(), "text/plain")
        if self.path == "/v1/metrics":
            receiver._accept_metrics(metrics)
            response = ExportMetricsServiceResponse().SerializeToString()
        else:
            receiver._accept(request)
            response = ExportTraceServiceResponse().SerializeToString()
        self._answer(200, response, "application/x-protobuf")

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, receiver: HttpReceiver) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.receiver = receiver


class HttpReceiver(Receiver):
    """An OTLP/HTTP (protobuf) trace receiver at ``endpoint + "/v1/traces"``."""

    protocol = "http/protobuf"

    def __init__(self, metrics: bool = True) -> None:
        super().__init__(metrics)
        #: The headers of every POST, accepted or not.
        self.headers: list[dict[str, str]] = []
        self._server: _HttpServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def traces_endpoint(self) -> str:
        return self.endpoint + "/v1/traces"

    def start(self) -> None:
        self._server = _HttpServer(self)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None


def child_env(**overrides: str) -> dict[str, str]:
    """An environment for a program under test: this one without any OTEL_*
    variable or color setting that happens to be set outside, plus ``overrides``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("OTEL_") and k not in ("NO_COLOR", "FORCE_COLOR", "PYTHONWARNINGS")
    }
    env.update(overrides)
    return env
