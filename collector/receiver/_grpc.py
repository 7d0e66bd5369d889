"""OTLP/gRPC receiver: TraceService, LogsService and MetricsService `Export`, on grpcio.

Handlers take the raw request bytes (no deserializer), so the gRPC path spools exactly what
the HTTP path does. grpcio handles gzip-compressed messages and the size limit itself.

Outcomes: OK (with partial success for metrics); INVALID_ARGUMENT for a malformed message (or ids
and times the store cannot hold, the field named); UNAUTHENTICATED without the bearer token (from
the call's metadata, before its message is read); RESOURCE_EXHAUSTED when too many calls are in flight
or a message is over the size limit; UNAVAILABLE when the spool is full or failing. The OTel
exporters retry RESOURCE_EXHAUSTED and UNAVAILABLE.
"""

from __future__ import annotations

import logging
import threading
from concurrent import futures
from typing import Any, Final

import grpc

from ._http import bearer_ok
from ._ingest import Ingester, Overloaded, Unavailable
from ._otlp_decode import BadPayload
from ._otlp_service import ENDPOINTS, Endpoint, export

__all__ = ["start_grpc"]

_log = logging.getLogger("driftline.serve.grpc")

_SERVICES: Final = {
    "opentelemetry.proto.collector.trace.v1.TraceService": "traces",
    "opentelemetry.proto.collector.logs.v1.LogsService": "logs",
    "opentelemetry.proto.collector.metrics.v1.MetricsService": "metrics",
}


def start_grpc(address: str, ingester: Ingester, *, token: str | None, max_message: int, max_in_flight: int,
               retry_after_seconds: int) -> tuple[grpc.Server, int]:  # fmt: skip
    """Start the gRPC server on `address` (host:port, port 0 picks one); returns it and its port."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_in_flight + 2, thread_name_prefix="driftline-grpc"),
        options=[("grpc.max_receive_message_length", max_message), ("grpc.max_send_message_length", 1 << 20)],
        maximum_concurrent_rpcs=max_in_flight * 4,
    )
    limiter = threading.BoundedSemaphore(max_in_flight)
    handlers = {f"/{service}/Export": (name, _export_handler(ingester, ENDPOINTS[name], limiter, retry_after_seconds))
                for service, name in _SERVICES.items()}  # fmt: skip
    server.add_generic_rpc_handlers((_Services(handlers, token, ingester),))
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot listen for gRPC on {address}")
    server.start()
    return server, port


class _Services:
    """Routes the Export calls (a grpc.GenericRpcHandler, by its one method). A call without the token is refused from its metadata alone: its handler
    is a streaming one, which grpcio calls before reading the request (a unary one gets the whole
    message first), so an unauthenticated client cannot make serve take in a message."""

    def __init__(self, handlers: dict[str, tuple[str, grpc.RpcMethodHandler]], token: str | None, ingester: Ingester) -> None:
        self._handlers, self._token, self._ingester = handlers, token, ingester

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        name, handler = self._handlers.get(handler_call_details.method, ("", None))
        if handler is None:
            return None
        metadata = dict(handler_call_details.invocation_metadata or ())
        if bearer_ok(str(metadata.get("authorization", "")), self._token):
            return handler

        def refuse(requests: Any, context: grpc.ServicerContext) -> bytes:
            self._ingester.metrics.reject("unauthorized", name)
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
            raise AssertionError("unreachable: context.abort raises")

        return grpc.stream_unary_rpc_method_handler(refuse, request_deserializer=None, response_serializer=None)


def _export_handler(ingester: Ingester, endpoint: Endpoint, limiter: threading.BoundedSemaphore, retry_after: int) -> grpc.RpcMethodHandler:
    def handle(request: bytes, context: grpc.ServicerContext) -> bytes:
        if not limiter.acquire(blocking=False):
            ingester.metrics.reject("too_many_requests", endpoint.name)
            context.set_trailing_metadata((("grpc-retry-pushback-ms", str(retry_after * 1000)),))
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "too many requests in flight; retry later")
        try:
            return bytes(_export(ingester, endpoint, request, context, retry_after).SerializeToString())
        finally:
            limiter.release()

    return grpc.unary_unary_rpc_method_handler(handle, request_deserializer=None, response_serializer=None)


def _export(ingester: Ingester, endpoint: Endpoint, request: bytes, context: grpc.ServicerContext, retry_after: int) -> Any:
    try:
        return export(ingester, endpoint, request, json_body=False)
    except BadPayload as exc:
        ingester.metrics.reject("bad_payload", endpoint.name)
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
    except (Overloaded, Unavailable) as exc:
        context.set_trailing_metadata((("grpc-retry-pushback-ms", str(retry_after * 1000)),))
        context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
    raise AssertionError("unreachable: context.abort raises")
