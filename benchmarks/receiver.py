"""An OTLP/gRPC trace receiver that only counts spans, run in its own process.

The harness starts it once (``python -m benchmarks.receiver``), so that the
measured process pays the real encoding and transport cost of an export while
the receiver's CPU is not in its measurements. Protocol, one line each:
it prints ``PORT <n>`` when it listens on 127.0.0.1; then every ``count`` line
on its stdin is answered with ``<spans> <requests>``; end of input stops it.
"""

from __future__ import annotations

import sys
import threading
from concurrent import futures
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


class CountingTraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.spans = 0
        self.requests = 0
        self._lock = threading.Lock()

    def Export(self, request: Any, context: grpc.ServicerContext) -> Any:
        n = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
        with self._lock:
            self.spans += n
            self.requests += 1
        return trace_service_pb2.ExportTraceServiceResponse()


def main() -> int:
    service = CountingTraceService()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=2),
        options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)],
    )
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"PORT {port}", flush=True)
    for line in sys.stdin:
        if line.strip() == "count":
            with service._lock:
                print(f"{service.spans} {service.requests}", flush=True)
    server.stop(grace=1).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
