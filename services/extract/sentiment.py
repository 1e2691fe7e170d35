"""Sentiment domain: CoinMarketCap's fear & greed index, latest and history."""

from cryptolake.services.extract.base import Extractor, Pages, single
from cryptolake.services.extract.fields import INT, STR, TS, columns

fear_greed_latest = Extractor(
    name="fear_greed_latest",
    path="/v3/fear-and-greed/latest",
    items=single,
    columns=columns(
        ("fear_greed_score", "value", INT, True),
        ("sentiment_label", "value_classification", STR),
        ("update_time", "update_time", TS),
    ),
)

fear_greed_historical = Extractor(
    name="fear_greed_historical",
    path="/v3/fear-and-greed/historical",
    plan=Pages(page_size=500),
    columns=columns(
        ("index_timestamp", "timestamp", TS, True),
        ("fear_greed_score", "value", INT, True),
        ("sentiment_label", "value_classification", STR),
    ),
)
