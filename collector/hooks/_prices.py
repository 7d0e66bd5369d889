"""The cost of a call the app did not price, from the genai-prices price table.

genai-prices (the `prices` extra) knows the current per-token rates of each provider's models,
including cache reads and writes at their own rates and long-context tiers; it is imported on
the first call that needs it, never with driftline.collector. Without it, or for a model it does
not know, a call simply has no cost. Each computed cost names the price table's version, which
llm_calls keeps (`cost_source`) beside the flag that the cost was computed (`cost_computed`).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

__all__ = ["Price", "computed_cost"]


class Price(NamedTuple):
    """A computed cost in USD and the price table it came from (`genai-prices 0.2.3`)."""

    usd: float
    source: str


@functools.cache
def _genai_prices() -> Any:
    """The genai_prices module, or None when the `prices` extra is not installed."""
    try:
        import genai_prices
    except ImportError:
        return None
    return genai_prices


def computed_cost(
    provider: str, model: str, *, input_tokens: int | None, output_tokens: int | None, cache_read_tokens: int | None = None,
    cache_write_tokens: int | None = None,
) -> Price | None:  # fmt: skip
    """What the call cost by the price table, or None (no table, no tokens, or a model it does not know).

    Input tokens include the cached ones (as providers report them); reasoning tokens are part of
    the output tokens and billed at the output rate, as providers bill them.
    """
    prices = _genai_prices()
    if prices is None or (input_tokens is None and output_tokens is None):
        return None
    usage = prices.Usage(input_tokens=input_tokens or 0, output_tokens=output_tokens or 0,
                         cache_read_tokens=cache_read_tokens or 0, cache_write_tokens=cache_write_tokens or 0)  # fmt: skip
    try:
        calculation = prices.calc_price(usage, model, provider_id=provider)
    except LookupError:
        return None
    return Price(float(calculation.total_price), f"genai-prices {prices.__version__}")
