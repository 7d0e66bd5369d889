"""Ambient release context: what the request runs against, set once, stamped on every GenAI span.

Prompt, index, route, tenant and input confidence live in a ContextVar, so they follow the
request through threads started with copied contexts and through asyncio tasks. A SpanProcessor
copies them onto every GenAI span when it starts, whichever instrumentation made the span
(driftline's hooks, openai-v2, OpenLLMetry, OpenInference, OpenLIT), without overwriting what the
span already says.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any, TypeVar, cast

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from driftline.collector import _names as n

__all__ = ["ReleaseContextProcessor", "current_release", "record_confidence", "release", "tag_retrieval"]

F = TypeVar("F", bound=Callable[..., Any])

_ambient: ContextVar[Mapping[str, Any]] = ContextVar("driftline_release", default=MappingProxyType({}))  # read-only: never mutated, only replaced

DEFAULT_LOW_CONFIDENCE = 0.6
"""Word confidence under which an ASR/OCR word counts as low (0..1)."""


def current_release() -> Mapping[str, Any]:
    """The ambient attributes in force here (empty outside any release context)."""
    return _ambient.get()


def _clean(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


class release(contextlib.ContextDecorator):  # noqa: N801  (reads as a verb at the call site)
    """Set the release context for a request: `with release(route=...):` or `@release(...)`.

    Nested contexts add to (and override) the outer one; leaving restores it.
    """

    def __init__(
        self,
        *,
        prompt_name: str | None = None,
        prompt_version: str | None = None,
        index_name: str | None = None,
        index_version: str | None = None,
        route: str | None = None,
        tenant: str | None = None,
    ) -> None:
        self._values = _clean({
            n.GEN_AI_PROMPT_NAME: prompt_name, n.GEN_AI_PROMPT_VERSION: prompt_version,
            n.INDEX_NAME: index_name, n.INDEX_VERSION: index_version, n.ROUTE: route, n.TENANT: tenant,
        })  # fmt: skip
        self._tokens: list[Any] = []

    def __enter__(self) -> release:
        self._tokens.append(_ambient.set({**_ambient.get(), **self._values}))
        return self

    def __exit__(self, *exc: object) -> None:
        _ambient.reset(self._tokens.pop())

    def __call__(self, func: F) -> F:
        """Decorate a function (sync or async) so each call runs in this context."""
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with release(**self._kwargs()):
                    return await func(*args, **kwargs)

            return cast(F, async_wrapper)  # same signature as func, by functools.wraps
        return super().__call__(func)

    def _kwargs(self) -> dict[str, Any]:
        back = {n.GEN_AI_PROMPT_NAME: "prompt_name", n.GEN_AI_PROMPT_VERSION: "prompt_version", n.INDEX_NAME: "index_name",
                n.INDEX_VERSION: "index_version", n.ROUTE: "route", n.TENANT: "tenant"}  # fmt: skip
        return {back[k]: v for k, v in self._values.items()}

    def _recreate_cm(self) -> release:
        return release(**self._kwargs())


def _add_ambient(values: Mapping[str, Any]) -> None:
    """Add to the ambient context for the rest of the enclosing release (or task)."""
    _ambient.set({**_ambient.get(), **_clean(values)})
    span = trace.get_current_span()
    if span.is_recording() and _is_genai(getattr(span, "attributes", None) or {}):
        span.set_attributes(_clean(values))


def tag_retrieval(*, index_name: str, index_version: str | None = None, documents: int | None = None, embedding_model: str | None = None) -> None:
    """Record which retrieval index (and build) the request's context came from."""
    _add_ambient({
        n.INDEX_NAME: index_name, n.INDEX_VERSION: index_version,
        n.RETRIEVAL_DOCUMENTS: documents, n.EMBEDDING_MODEL: embedding_model,
    })  # fmt: skip


def record_confidence(
    *,
    words: Iterable[float] | None = None,
    mean: float | None = None,
    minimum: float | None = None,
    low_words: int | None = None,
    threshold: float = DEFAULT_LOW_CONFIDENCE,
    engine: str | None = None,
) -> None:
    """Record the ASR/OCR confidence of the input the LLM is about to read.

    Give the per-word confidences (`words`) and driftline computes mean, min and the count under
    `threshold`; or give the summary values you already have.
    """
    if words is not None:
        scores = list(words)
        if not scores:
            raise ValueError("record_confidence(words=...) needs at least one word confidence")
        if not all(0.0 <= s <= 1.0 for s in scores):
            raise ValueError(f"word confidence must be within 0..1, got {max(scores, key=lambda s: abs(s - 0.5))}")
        mean, minimum = sum(scores) / len(scores), min(scores)
        low_words = sum(1 for s in scores if s < threshold)
    for label, value in (("mean", mean), ("minimum", minimum)):
        if value is not None and not 0.0 <= value <= 1.0:
            raise ValueError(f"confidence {label} must be within 0..1, got {value}")
    _add_ambient({
        n.CONFIDENCE_MEAN: mean, n.CONFIDENCE_MIN: minimum, n.CONFIDENCE_LOW_WORDS: low_words,
        n.CONFIDENCE_THRESHOLD: threshold if low_words is not None else None, n.CONFIDENCE_ENGINE: engine,
    })  # fmt: skip


def _is_genai(attributes: Mapping[str, Any], name: str = "") -> bool:
    """A GenAI span by its attributes, or by a `{operation} {model}` name (OpenLIT and others
    start their spans bare and set the attributes only after the response)."""
    if any(key in attributes for key in n.GENAI_MARKERS) or attributes.get(n.OI_SPAN_KIND) == "LLM":
        return True
    return name.partition(" ")[0] in n.GENAI_OPERATIONS


class ReleaseContextProcessor(SpanProcessor):
    """Stamps the ambient release context onto GenAI spans as they start. Never raises."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        ambient = _ambient.get()
        if not ambient:
            return
        try:
            scope = span.instrumentation_scope
            if scope is not None and scope.name == n.SCOPE:  # llm_call stamped its span as it started it
                return
            attributes = span.attributes or {}
            missing = {k: v for k, v in ambient.items() if k not in attributes}
            if missing and _is_genai(attributes, span.name):
                span.set_attributes(missing)
        except Exception:  # a processor must not break the app's span
            return

    def on_end(self, span: ReadableSpan) -> None:
        return None

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True
