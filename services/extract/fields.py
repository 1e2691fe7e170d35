"""Typed bronze columns declared as data: (column name, JSON path, type) per field.

Bronze keeps the API's values, only typed: numbers as numbers, timestamps as UTC timestamps, ids as integers,
category ids as strings. Parsing is lenient about the shapes the API documents or sends (numbers and ids as
strings, exponent notation, timestamps as ISO-8601 or epoch seconds/milliseconds) and narrow about failure:
an item whose key fields cannot be typed is rejected alone (quarantined with its reason), and a non-key field
that cannot be typed becomes NULL and is counted, so one bad value never costs a page.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Iterable

import pyarrow as pa

from cryptolake.errors import CryptolakeError

INT64 = range(-2**63, 2**63)
# Epoch values at or above this many units are milliseconds: 1e11 seconds lies in the year 5138.
EPOCH_MILLIS_FROM = 1e11


class ParseError(CryptolakeError):
    """A payload or value that does not fit the extractor's schema."""


def _number(value: Any, what: str) -> Decimal:
    """Any JSON number or numeric string (`"1.5e-3"`, `" 42 "`) as an exact Decimal; finite only."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ParseError(f"expected {what}, got {value!r}")
    try:
        number = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise ParseError(f"expected {what}, got {value!r}") from None
    if not number.is_finite():
        raise ParseError(f"expected a finite {what}, got {value!r}")
    return number


def _int(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        number: Decimal | int = value
    else:
        number = _number(value, "an integer")  # info's platform.id is a string, some counts come as 12.0
        if number != number.to_integral_value():
            raise ParseError(f"expected an integer, got {value!r}")
    if int(number) not in INT64:
        raise ParseError(f"integer {value!r} does not fit 64 bits")
    return int(number)


def _float(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise ParseError(f"expected a finite number, got {value!r}")
        return value
    number = float(_number(value, "a number"))
    if math.isinf(number):
        raise ParseError(f"number {value!r} is out of range")
    return number


def _str(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):  # ids sent as numbers
        return str(value)
    raise ParseError(f"expected a string, got {value!r}")


_BOOLS = {"true": True, "false": False, "1": True, "0": False}


def _bool(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _BOOLS:
        return _BOOLS[value.strip().lower()]
    raise ParseError(f"expected a boolean or 0/1, got {value!r}")


def _timestamp(value: Any) -> datetime | None:
    """ISO-8601 (`2013-04-28T18:47:21.000Z`), or epoch seconds or milliseconds, as numbers or numeric strings
    (fear & greed sends seconds as strings)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ParseError(f"expected a timestamp, got {value!r}")
    try:
        epoch = _number(value, "a timestamp")
    except ParseError:  # not a finite number: ISO-8601 text, or nothing a timestamp can be
        if not isinstance(value, str):
            raise ParseError(f"expected a timestamp, got {value!r}") from None
        epoch = None
    try:
        if epoch is None:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
            return parsed.astimezone(timezone.utc) if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
        seconds = epoch / 1000 if abs(epoch) >= EPOCH_MILLIS_FROM else epoch
        return datetime.fromtimestamp(float(seconds), timezone.utc)
    except (ValueError, OverflowError, OSError):
        raise ParseError(f"expected a timestamp, got {value!r}") from None


def _str_list(value: Any) -> list[str] | None:
    """Tags arrive as strings (listings) or as {slug, name, category} objects (quotes): keep the slug."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise ParseError(f"expected a list, got {value!r}")
    out = []
    for item in value:
        if isinstance(item, dict):
            item = item.get("slug")
        out.append(_str(item))
    return out


def _first_str(value: Any) -> str | None:
    """URL fields are arrays (urls.website: [...]); the warehouse keeps the first one."""
    if isinstance(value, list):
        return _str(value[0]) if value else None
    return _str(value)


@dataclass(frozen=True)
class Kind:
    arrow: pa.DataType
    convert: Callable[[Any], Any]


INT = Kind(pa.int64(), _int)
FLOAT = Kind(pa.float64(), _float)
STR = Kind(pa.string(), _str)
BOOL = Kind(pa.bool_(), _bool)
TS = Kind(pa.timestamp("us", tz="UTC"), _timestamp)
STR_LIST = Kind(pa.list_(pa.string()), _str_list)
FIRST_STR = Kind(pa.string(), _first_str)

LINEAGE = [pa.field("snapshot_timestamp", TS.arrow, nullable=False), pa.field("run_id", pa.string(), nullable=False)]


@dataclass(frozen=True)
class Column:
    name: str
    path: str  # dotted path into the item; `@key` means the object key the item came from
    kind: Kind
    required: bool = False

    def read(self, item: dict, key: str | None) -> Any:
        if self.path == "@key":
            value: Any = key
        else:
            value = item
            for part in self.path.split("."):
                value = value.get(part) if isinstance(value, dict) else None
        if value is None and self.required:
            raise ParseError(f"required field {self.path!r} is missing")
        try:
            return self.kind.convert(value)
        except ParseError as err:
            raise ParseError(f"field {self.path!r}: {err.what}") from None


def columns(*specs: tuple) -> tuple[Column, ...]:
    return tuple(Column(*spec) for spec in specs)


def schema_of(cols: Iterable[Column]) -> pa.Schema:
    return pa.schema([pa.field(c.name, c.kind.arrow) for c in cols] + LINEAGE)


@dataclass(frozen=True)
class Rejected:
    """An item that could not become a row: its key or position, the reason, the item as received."""

    key: Any
    error: str
    item: Any


@dataclass(frozen=True)
class ParsedPage:
    batch: pa.RecordBatch
    items: int  # items the page held, parsed or not (paging compares it with the page size)
    rejected: list[Rejected]
    nulled: collections.Counter  # field path -> values that did not fit and were stored as NULL


def to_batch(cols: tuple[Column, ...], items: Iterable[tuple[Any, Any]], snapshot_ts: datetime,
             run_id: str) -> ParsedPage:
    """Typed rows of one page. An item whose key (required) fields do not fit is rejected with the reason;
    any other field that does not fit becomes NULL and is counted under its path."""
    schema = schema_of(cols)
    data: dict[str, list] = {f.name: [] for f in schema}
    rejected: list[Rejected] = []
    nulled: collections.Counter = collections.Counter()
    count = 0
    for index, (key, item) in enumerate(items):
        count += 1
        name = key if key is not None else item.get("id", index) if isinstance(item, dict) else index
        try:
            row = _row(cols, item, key, nulled)
        except ParseError as err:
            rejected.append(Rejected(name, f"item {name!r}: {err.what}", item))
            continue
        for col, value in zip(cols, row):
            data[col.name].append(value)
        data["snapshot_timestamp"].append(snapshot_ts)
        data["run_id"].append(run_id)
    return ParsedPage(pa.RecordBatch.from_pydict(data, schema=schema), count, rejected, nulled)


def _row(cols: tuple[Column, ...], item: Any, key: Any, nulled: collections.Counter) -> list:
    if not isinstance(item, dict):
        raise ParseError(f"is {type(item).__name__}, not an object")
    row = []
    for col in cols:
        try:
            row.append(col.read(item, key))
        except ParseError:
            if col.required:
                raise
            nulled[col.path] += 1
            row.append(None)
    return row
