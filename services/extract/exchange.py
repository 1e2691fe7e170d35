"""Exchange domain: the exchange map, exchange metadata, and the wallets each exchange holds."""

from cryptolake.services.extract.base import (ActiveSet, Credits, Extractor, IdBatches, NewIds, Pages, keyed,
                                              listed_per_request_id)
from cryptolake.services.extract.fields import BOOL, FIRST_STR, FLOAT, INT, STR, STR_LIST, TS, columns

exchange_map = Extractor(
    name="exchange_map",
    path="/v1/exchange/map",
    params={"sort": "id", "aux": "first_historical_data,last_historical_data,is_active"},
    plan=Pages(page_size=5000),
    id_column="exchange_id",
    skip_unchanged=True,
    columns=columns(
        ("exchange_id", "id", INT, True),
        ("name", "name", STR),
        ("slug", "slug", STR),
        ("is_active", "is_active", BOOL),
        ("first_historical_data", "first_historical_data", TS),
        ("last_historical_data", "last_historical_data", TS),
    ),
)

exchange_info = Extractor(
    name="exchange_info",
    path="/v1/exchange/info",
    params={"aux": "urls,logo,description,date_launched,notice"},
    plan=IdBatches(NewIds("exchange_map", "exchange_id"), size=100),
    items=keyed,
    credits=Credits(per_items=100),
    id_column="exchange_id",
    columns=columns(
        ("exchange_id", "id", INT, True),
        ("name", "name", STR),
        ("slug", "slug", STR),
        ("logo_url", "logo", STR),
        ("description", "description", STR),
        ("date_launched", "date_launched", TS),
        ("notice", "notice", STR),
        ("countries", "countries", STR_LIST),
        ("fiats", "fiats", STR_LIST),
        ("type", "type", STR),
        ("maker_fee", "maker_fee", FLOAT),
        ("taker_fee", "taker_fee", FLOAT),
        ("weekly_visits", "weekly_visits", INT),
        ("spot_volume_usd", "spot_volume_usd", FLOAT),
        ("spot_volume_last_updated", "spot_volume_last_updated", TS),
        ("website_url", "urls.website", FIRST_STR),
        ("twitter_url", "urls.twitter", FIRST_STR),
        ("blog_url", "urls.blog", FIRST_STR),
        ("chat_url", "urls.chat", FIRST_STR),
        ("fee_url", "urls.fee", FIRST_STR),
    ),
)

exchange_assets = Extractor(
    name="exchange_assets",
    path="/v1/exchange/assets",
    plan=IdBatches(ActiveSet("exchange_map", "exchange_id"), size=1),
    items=listed_per_request_id,
    id_column="exchange_id",
    columns=columns(
        ("exchange_id", "@key", INT, True),
        ("wallet_address", "wallet_address", STR),
        ("balance", "balance", FLOAT),
        ("platform_crypto_id", "platform.crypto_id", INT),
        ("platform_symbol", "platform.symbol", STR),
        ("platform_name", "platform.name", STR),
        ("crypto_id", "currency.crypto_id", INT),
        ("currency_symbol", "currency.symbol", STR),
        ("currency_name", "currency.name", STR),
        ("currency_price_usd", "currency.price_usd", FLOAT),
    ),
)
