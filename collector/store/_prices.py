"""The store's price table, `model_prices`, from genai-prices: what llm_calls prices a call from
when neither the app nor the instrumentation gave a cost (in its columns' defaults,
migrations/llm_calls_pricing.sql).

One row per provider and exact model name the price table matches (models it matches only by
prefix or substring are left out), with the per-token rates of the prices in force now at the
base tier (long-context tiers are not applied in SQL): input, cache read, cache write, output,
and the version they came from. The rows sit in a Join-engine table, an in-memory hash read with
joinGet per call, so pricing costs one lookup, not a join. Rows are keyed by genai-prices'
provider ids and by the names OpenTelemetry gives the same providers.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

from driftline.collector._errors import ConfigError

from ._store import Store

__all__ = ["PRICES_TABLE", "installed_prices", "load_prices", "loaded_prices", "price_rows", "refresh_prices"]

PRICES_TABLE = "model_prices"
OTEL_PROVIDER_NAMES = {
    "google": ("gcp.gemini", "gcp.vertex_ai", "gcp.gen_ai"), "aws": ("aws.bedrock",), "azure": ("azure.ai.openai", "azure.ai.inference"),
    "mistral": ("mistral_ai",), "x-ai": ("x_ai",), "cohere": (), "deepseek": (), "groq": (), "perplexity": (),
}  # fmt: skip
"""gen_ai.provider.name values (OTel GenAI conventions) of the providers genai-prices ids differently."""


def _genai_prices() -> Any:
    try:
        import genai_prices
    except ImportError:
        raise ConfigError("the price table needs genai-prices: pip install 'driftline[prices]'") from None
    return genai_prices


def installed_prices() -> str | None:
    """`genai-prices <version>` of the installed price table, None without the `prices` extra. Read
    from the package's metadata: importing genai-prices (~0.15 s) waits until a table is loaded, so
    an app or serve starting on a store that holds this version already does not pay it."""
    try:
        return _source()
    except metadata.PackageNotFoundError:
        return None


def _source() -> str:
    return f"genai-prices {metadata.version('genai-prices')}"


def _names(clause: Any) -> Iterator[str]:
    """The exact model names a genai-prices match clause accepts (equals, and ors of them)."""
    if hasattr(clause, "equals"):
        yield clause.equals
    for inner in getattr(clause, "or_", None) or ():
        yield from _names(inner)


def _per_token(mtok: Any) -> float | None:
    """A genai-prices price per million tokens as USD per token; tiered prices at their base tier."""
    if mtok is None:
        return None
    return float(getattr(mtok, "base", mtok)) / 1e6


def price_rows() -> list[tuple[str, str, tuple[float, float, float, float, str]]]:
    """(provider, model, (input, cache read, cache write, output per token in USD, source)) for every
    exact name in the installed genai-prices, and the version alone under the empty key (a Join
    table cannot be read back, only looked up). Cache reads and writes without a price of their
    own cost the input price, as genai-prices counts them."""
    prices = _genai_prices()
    source, now = _source(), datetime.now(UTC)
    rows = [("", "", (0.0, 0.0, 0.0, 0.0, source))]
    for provider in prices.data_snapshot.get_snapshot().providers:
        for model in provider.models:
            price = model.get_prices(now)
            r_in = _per_token(price.input_mtok) or 0.0
            rates = (r_in, _per_token(price.cache_read_mtok) or r_in, _per_token(price.cache_write_mtok) or r_in, _per_token(price.output_mtok) or 0.0)
            for name in dict.fromkeys([model.id, *_names(model.match)]):
                for key in (provider.id, *OTEL_PROVIDER_NAMES.get(provider.id, ())):
                    rows.append((key, name, (*rates, source)))
    return rows


def load_prices(store: Store) -> int:
    """Replace the store's price table with the installed genai-prices; returns its rows."""
    rows = price_rows()
    store.command(f"TRUNCATE TABLE {PRICES_TABLE}")
    store.insert(PRICES_TABLE, [list(column) for column in zip(*rows)], ["provider", "model", "rates"])
    return len(rows)


def loaded_prices(store: Store) -> str | None:
    """The version of the price table the store holds (`genai-prices 0.2.3`), None when empty."""
    version = str(store.rows(f"SELECT joinGet('{PRICES_TABLE}', 'rates', '', '').5")[0][0])
    return version or None


def refresh_prices(store: Store) -> str | None:
    """Load the installed genai-prices into the store unless it holds that version already; returns
    the version loaded, or None when nothing was (no `prices` extra, or already current)."""
    installed = installed_prices()
    if installed is None or loaded_prices(store) == installed:
        return None
    load_prices(store)
    return installed
