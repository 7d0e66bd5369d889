"""The call wrapper and stream recorder: what no instrumentation records on its own.

`llm_call(...)` opens a GenAI client span named per the conventions (`{operation} {model}`).
Inside it, `call.stream(chunks)` (or `call.astream(...)` for an async stream) wraps the provider's
stream and measures time to first chunk,
time per output token and the longest stall between chunks; a consumer that stops iterating
early marks the call cancelled, and the provider's billed output tokens (when reported) give
the tokens generated after the cancel. `call.response(...)` records what the provider returned.
An exception leaving the block marks the span as an error with `error.type`.
"""

from __future__ import annotations

import contextlib
import functools
import time
import weakref
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from contextvars import Token
from types import TracebackType
from typing import Any, TypeVar

from opentelemetry import context, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from driftline.collector import _names as n

from ._context import current_release

__all__ = ["LLMCall", "llm_call"]

T = TypeVar("T")


@functools.cache
def _version() -> str:
    from importlib.metadata import version

    return version("driftline")


_tracers: weakref.WeakKeyDictionary[trace.TracerProvider, trace.Tracer] = weakref.WeakKeyDictionary()


def _tracer(provider: trace.TracerProvider | None = None) -> trace.Tracer:
    """driftline's tracer from `provider`, else from the global provider.

    Cached per provider: asking the SDK for a tracer costs about as much as making a span.
    """
    source = provider or trace.get_tracer_provider()
    tracer = _tracers.get(source)
    if tracer is None:
        tracer = _tracers[source] = source.get_tracer(n.SCOPE, _version())
    return tracer


class LLMCall:
    """One GenAI call in flight; use through `llm_call(...)`."""

    def __init__(self, span: Span, *, stream: bool, clock: Callable[[], int], started: int) -> None:
        self.span = span
        self._clock = clock
        self._stream = stream
        self._first_chunk: int | None = None
        self._last_chunk: int | None = None
        self._longest_stall = 0
        self._delivered = 0
        self._cancelled = False
        self._open_streams = 0
        self._output_tokens: int | None = None
        self._started = started

    def response(
        self,
        *,
        model: str | None = None,
        response_id: str | None = None,
        fingerprint: str | None = None,
        finish_reason: str | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cached_tokens: int | None = None,
        reasoning_tokens: int | None = None,
        cache_write_tokens: int | None = None,
        cost: float | None = None,
    ) -> None:
        """Record what the provider returned; unknown values are simply left out.

        `cost` is in USD. Without one, the store prices the call from its price table (genai-prices,
        see `driftline db migrate`) and marks the cost computed.
        """
        if output_tokens is not None:
            self._output_tokens = output_tokens
        values: dict[str, Any] = {
            n.GEN_AI_RESPONSE_MODEL: model, n.GEN_AI_RESPONSE_ID: response_id, n.OPENAI_RESPONSE_SYSTEM_FINGERPRINT: fingerprint,
            n.GEN_AI_RESPONSE_FINISH_REASONS: [finish_reason] if finish_reason else None,
            n.GEN_AI_USAGE_INPUT_TOKENS: input_tokens, n.GEN_AI_USAGE_OUTPUT_TOKENS: output_tokens,
            n.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: cached_tokens, n.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: reasoning_tokens,
            n.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: cache_write_tokens,
        }  # fmt: skip
        if cost is not None:
            values.update({n.GEN_AI_USAGE_COST_AMOUNT: cost, n.GEN_AI_USAGE_COST_CURRENCY: "USD", n.GEN_AI_USAGE_COST_SOURCE: "app"})
        self.span.set_attributes({k: v for k, v in values.items() if v is not None})

    def validation(self, outcome: str) -> None:
        """Record the structured-output validation outcome (ok, parse_error, schema_error, semantic_error)."""
        if outcome not in n.VALIDATION_OUTCOMES:
            raise ValueError(f"validation outcome must be one of {', '.join(n.VALIDATION_OUTCOMES)}, not {outcome!r}")
        self.span.set_attribute(n.VALIDATION_OUTCOME, outcome)

    def failed(self, *, error_type: str, http_status: int | None = None, message: str = "") -> None:
        """Record a provider error that did not raise (an error response the app handled)."""
        self.span.set_attribute(n.ERROR_TYPE, error_type)
        if http_status is not None:
            self.span.set_attribute(n.HTTP_RESPONSE_STATUS_CODE, http_status)
        self.span.set_status(Status(StatusCode.ERROR, message or error_type))

    def stream(self, chunks: Iterable[T], *, tokens: Callable[[T], int] = lambda _: 1) -> Iterator[T]:
        """Pass the provider's chunks through, timing them; stopping early counts as a cancel.

        `tokens(chunk)` says how many output tokens a chunk carries (default one per chunk). A
        stream not read to its end when the call's block exits (the consumer broke out, or kept
        the iterator and left) counts as cancelled; one the provider failed counts as an error.
        """
        self._stream = True
        self._open_streams += 1
        return self._relay(chunks, tokens)

    def _relay(self, chunks: Iterable[T], tokens: Callable[[T], int]) -> Iterator[T]:
        with self._reading():
            for chunk in chunks:
                self._on_chunk(tokens(chunk))
                yield chunk

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        """Close the stream's count when it ends or fails; one abandoned mid-way stays open (a cancel)."""
        try:
            yield
        except Exception:
            self._open_streams -= 1
            raise
        self._open_streams -= 1

    def astream(self, chunks: AsyncIterable[T], *, tokens: Callable[[T], int] = lambda _: 1) -> AsyncIterator[T]:
        """`stream` for an async provider stream (AsyncOpenAI, AsyncAnthropic): `async for`."""
        self._stream = True
        self._open_streams += 1
        return self._arelay(chunks, tokens)

    async def _arelay(self, chunks: AsyncIterable[T], tokens: Callable[[T], int]) -> AsyncIterator[T]:
        with self._reading():
            async for chunk in chunks:
                self._on_chunk(tokens(chunk))
                yield chunk

    def _on_chunk(self, count: int) -> None:
        now = self._clock()
        if self._first_chunk is None:
            self._first_chunk = now
        elif self._last_chunk is not None:
            self._longest_stall = max(self._longest_stall, now - self._last_chunk)
        self._last_chunk = now
        self._delivered += count

    def cancel(self) -> None:
        """Mark the stream cancelled (the user went away) when iteration cannot show it."""
        self._cancelled = True

    def _finish_stream(self) -> None:
        attrs: dict[str, Any] = {n.GEN_AI_REQUEST_STREAM: True, n.STREAM_TOKENS_DELIVERED: self._delivered}
        if self._first_chunk is not None:
            attrs[n.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = (self._first_chunk - self._started) / 1e9
            attrs[n.STREAM_LONGEST_STALL] = self._longest_stall / 1e9
            if self._delivered > 1 and self._last_chunk is not None:
                attrs[n.STREAM_TIME_PER_OUTPUT_TOKEN] = (self._last_chunk - self._first_chunk) / 1e9 / (self._delivered - 1)
        cancelled = self._cancelled or self._open_streams > 0
        attrs[n.STREAM_CANCELLED] = cancelled  # explicit, so a full stream without a finish reason is not a cancel
        if cancelled:
            attrs[n.GEN_AI_AGENT_INVOCATION_END_REASON] = "interrupted"
            if self._output_tokens is not None:
                attrs[n.STREAM_TOKENS_AFTER_CANCEL] = max(self._output_tokens - self._delivered, 0)
        self.span.set_attributes(attrs)


class llm_call:  # noqa: N801  (a context manager read as a verb)
    """`with llm_call(provider=..., model=...) as call:` wraps one GenAI request in a span."""

    def __init__(
        self,
        *,
        provider: str,
        model: str,
        operation: str = "chat",
        stream: bool = False,
        server_address: str | None = None,
        conversation_id: str | None = None,
        attributes: dict[str, Any] | None = None,
        clock: Callable[[], int] = time.time_ns,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        """`clock` (ns since the epoch) times the span and its chunks; simulations pass their own.

        `tracer_provider` defaults to the global one (set by `instrument()`).
        """
        self._provider = tracer_provider
        self._attributes: dict[str, Any] = {
            n.GEN_AI_OPERATION_NAME: operation,
            n.GEN_AI_PROVIDER_NAME: provider,
            n.GEN_AI_REQUEST_MODEL: model,
            n.GEN_AI_REQUEST_STREAM: stream,
        }
        if server_address:
            self._attributes[n.SERVER_ADDRESS] = server_address
        if conversation_id:
            self._attributes[n.GEN_AI_CONVERSATION_ID] = conversation_id
        self._attributes.update(attributes or {})
        self._name = f"{operation} {model}"
        self._stream = stream
        self._clock = clock
        self._token: Token[Context] | None = None
        self._call: LLMCall | None = None

    def __enter__(self) -> LLMCall:
        started = self._clock()
        ambient = current_release()  # stamped here at once, so the processor has nothing left to add
        attributes = {**ambient, **self._attributes} if ambient else self._attributes
        span = _tracer(self._provider).start_span(self._name, kind=SpanKind.CLIENT, attributes=attributes, start_time=started)
        self._token = context.attach(trace.set_span_in_context(span))  # use_span without its generator's cost
        self._call = LLMCall(span, stream=self._stream, clock=self._clock, started=started)
        return self._call

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        call = self._call
        assert call is not None and self._token is not None
        if call._stream:
            call._finish_stream()
        if exc is not None:
            call.span.set_attribute(n.ERROR_TYPE, f"{type(exc).__module__}.{type(exc).__qualname__}".removeprefix("builtins."))
            status = getattr(exc, "status_code", None)
            if isinstance(status, int):
                call.span.set_attribute(n.HTTP_RESPONSE_STATUS_CODE, status)
            call.span.set_status(Status(StatusCode.ERROR, str(exc)[:1024]))
        context.detach(self._token)
        call.span.end(end_time=self._clock())
