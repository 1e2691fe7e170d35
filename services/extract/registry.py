"""Every extractor by canonical name, and the frequency groups derived from their declarations."""

from cryptolake.groups import GROUPS
from cryptolake.services.extract.base import Extractor
from cryptolake.services.extract.category import crypto_categories, crypto_category
from cryptolake.services.extract.crypto import crypto_info, crypto_listings_latest, crypto_map
from cryptolake.services.extract.exchange import exchange_assets, exchange_info, exchange_map
from cryptolake.services.extract.global_market import global_metrics_latest
from cryptolake.services.extract.key import key_info
from cryptolake.services.extract.sentiment import fear_greed_historical, fear_greed_latest

# Run order inside a group: key_info first (the governor reads it), maps before what reads their ids.
EXTRACTORS: dict[str, Extractor] = {e.name: e for e in (
    key_info, exchange_map, exchange_info, exchange_assets, crypto_map, crypto_info, crypto_listings_latest,
    crypto_categories, crypto_category, global_metrics_latest, fear_greed_latest, fear_greed_historical,
)}


def group(name: str) -> list[Extractor]:
    if name not in GROUPS:
        raise ValueError(f"unknown group {name!r}; choose one of {', '.join(GROUPS)}")
    if name == "all":
        return list(EXTRACTORS.values())
    return [e for e in EXTRACTORS.values() if name in e.groups]
