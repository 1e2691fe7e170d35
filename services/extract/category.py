"""Category domain: the category list with its market figures, and which coins belong to each category."""

from typing import Any

from cryptolake.services.extract.base import Chunk, Credits, Extractor, IdBatches, Items, Pages, RotatingSlice
from cryptolake.services.extract.fields import FLOAT, INT, STR, TS, ParseError, columns


CATEGORY_LIMIT = 1000  # coins per /category call (the API's maximum)


def category_coins(data: Any, chunk: Chunk) -> Items:
    """/category answers the category object with its coins inside: one row per (category, coin)."""
    if not isinstance(data, dict) or not isinstance(data.get("coins"), list):
        raise ParseError("expected a category object with a coins array")
    return ((data.get("id"), coin) for coin in data["coins"])


crypto_categories = Extractor(
    name="crypto_categories",
    path="/v1/cryptocurrency/categories",
    plan=Pages(page_size=5000),
    id_column="category_id",
    columns=columns(
        ("category_id", "id", STR, True),
        ("name", "name", STR),
        ("title", "title", STR),
        ("description", "description", STR),
        ("num_tokens", "num_tokens", INT),
        ("avg_price_change", "avg_price_change", FLOAT),
        ("market_cap", "market_cap", FLOAT),
        ("market_cap_change", "market_cap_change", FLOAT),
        ("volume", "volume", FLOAT),
        ("volume_change", "volume_change", FLOAT),
        ("last_updated", "last_updated", TS),
    ),
)

crypto_category = Extractor(
    name="crypto_category",
    path="/v1/cryptocurrency/category",
    plan=IdBatches(RotatingSlice("crypto_categories", "category_id"), size=1, extra={"limit": CATEGORY_LIMIT},
                   items_per_id=CATEGORY_LIMIT),
    credits=Credits(per_items=200, base=1),  # an upper bound: most categories hold far fewer than 1,000 coins
    items=category_coins,
    id_column="category_id",
    columns=columns(
        ("category_id", "@key", STR, True),
        ("crypto_id", "id", INT, True),
        ("name", "name", STR),
        ("symbol", "symbol", STR),
        ("slug", "slug", STR),
        ("cmc_rank", "cmc_rank", INT),
        ("last_updated", "last_updated", TS),
    ),
)
