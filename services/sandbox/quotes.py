"""Currencies for the `convert` / `convert_id` parameters, and the per-currency `quote` objects built from them.

Fiat rates are fixed (the sandbox has no FX market); a crypto currency converts at its own simulated price.
As in the real API a symbol that is both a fiat and a coin means the fiat, and a coin symbol shared by several
coins means the one with the largest market cap.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptolake.services.sandbox.api import Call, bad_request, invalid_value
from cryptolake.services.sandbox.market import ACTIVE, LAGS, Snapshot

# id, name, sign, symbol, USD per unit (a subset of the 93 fiats the real API supports)
FIATS = (
    (2781, "United States Dollar", "$", "USD", 1.0), (2790, "Euro", "€", "EUR", 1.08),
    (2791, "Pound Sterling", "£", "GBP", 1.27), (2797, "Japanese Yen", "¥", "JPY", 0.0066),
    (2784, "Canadian Dollar", "$", "CAD", 0.73), (2782, "Australian Dollar", "$", "AUD", 0.66),
    (2785, "Swiss Franc", "Fr", "CHF", 1.12), (2787, "Chinese Yuan", "¥", "CNY", 0.138),
    (2796, "Indian Rupee", "₹", "INR", 0.012), (2798, "South Korean Won", "₩", "KRW", 0.00073),
    (2783, "Brazilian Real", "R$", "BRL", 0.18), (2810, "Turkish Lira", "₺", "TRY", 0.029),
    (2806, "Russian Ruble", "₽", "RUB", 0.011), (2799, "Mexican Peso", "$", "MXN", 0.055),
    (2808, "Singapore Dollar", "S$", "SGD", 0.74), (2792, "Hong Kong Dollar", "$", "HKD", 0.128),
    (2801, "Norwegian Krone", "kr", "NOK", 0.092), (2807, "Swedish Krona", "kr", "SEK", 0.094),
    (2789, "Danish Krone", "kr", "DKK", 0.145), (2805, "Polish Złoty", "zł", "PLN", 0.25),
    (2812, "South African Rand", "R", "ZAR", 0.054), (2813, "United Arab Emirates Dirham", "د.إ", "AED", 0.272),
    (2802, "New Zealand Dollar", "$", "NZD", 0.6), (2800, "Malaysian Ringgit", "RM", "MYR", 0.22),
    (2809, "Thai Baht", "฿", "THB", 0.029), (2794, "Indonesian Rupiah", "Rp", "IDR", 0.000063),
    (2803, "Philippine Peso", "₱", "PHP", 0.017), (2823, "Vietnamese Dong", "₫", "VND", 0.00004),
    (2824, "Ukrainian Hryvnia", "₴", "UAH", 0.024), (2819, "Nigerian Naira", "₦", "NGN", 0.00065),
    (2821, "Argentine Peso", "$", "ARS", 0.001),
)
METALS = (
    (3575, "Gold Troy Ounce", "", "XAU", 2600.0), (3574, "Silver Troy Ounce", "", "XAG", 30.0),
    (3577, "Platinum Ounce", "", "XPT", 950.0), (3576, "Palladium Ounce", "", "XPD", 1000.0),
)
_BY_SYMBOL = {f[3]: f for f in FIATS + METALS}
_BY_ID = {f[0]: f for f in FIATS + METALS}


@dataclass(frozen=True)
class Currency:
    key: str                   # the key of its object inside `quote`: as the caller named it
    usd: float                 # USD value of one unit
    pct: dict[str, float]      # its own price changes over LAGS (zero for fiat)

    @property
    def is_usd(self) -> bool:
        return self.usd == 1.0 and not any(self.pct.values())


_FLAT = {name: 0.0 for name in LAGS}


def currencies(call: Call, snap: Snapshot) -> list[Currency]:
    """The currencies a call asked for (USD by default), validated against the plan's convert allowance."""
    by_id = call.args.get("convert_id")
    wanted = by_id or call.args.get("convert") or ("USD",)
    if len(wanted) > call.plan.max_convert:
        raise bad_request(f"Your plan is limited to {call.plan.max_convert} convert options")
    coins = call.market.universe.coins
    found = []
    for item in wanted:
        fiat = _BY_ID.get(item) if by_id else _BY_SYMBOL.get(str(item).upper())
        if fiat:
            found.append(Currency(str(item) if by_id else fiat[3], fiat[4], _FLAT))
            continue
        if by_id:
            index = coins.index_of_id.get(item)
            index = index if index is not None and snap.state[index] == ACTIVE else None
        else:
            matches = [i for i, s in enumerate(coins.symbols) if s == str(item).upper() and snap.state[i] == ACTIVE]
            index = max(matches, key=lambda i: snap.market_cap[i]) if matches else None
        if index is None:
            raise invalid_value("convert_id" if by_id else "convert", ",".join(str(w) for w in wanted))
        found.append(Currency(str(item) if by_id else coins.symbols[index], float(snap.price[index]),
                              {name: float(snap.pct[name][index]) for name in LAGS}))
    return found


def convert(value: float | None, currency: Currency) -> float | None:
    return value if value is None or currency.is_usd else value / currency.usd


def convert_pct(pct: float, currency: Currency, lag: str) -> float:
    if currency.is_usd:
        return pct
    return round(((1 + pct / 100) / (1 + currency.pct[lag] / 100) - 1) * 100, 8)
