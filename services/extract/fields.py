"""Typed bronze columns declared as data: (column name, JSON path, type) per field.

Bronze keeps the API's values, only typed: numbers as numbers, timestamps as UTC timestamps, ids as integers,
category ids as strings. A value that cannot be typed raises ParseError, so the page is quarantined with the
reason instead of a crash or a silently wrong column.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

import pyarrow as pa

from cryptolake.errors import CryptolakeError


class ParseError(CryptolakeError):
    """A payload that does not fit the extractor's schema."""


def _int(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ParseError(f"expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():  # info's platform.id is a string
        return int(value)
    raise ParseError(f"expected an integer, got {value!r}")


def _float(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ParseError(f"expected a number, got {value!r}")
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise ParseError(f"expected a number, got {value!r}") from None
    else:
        raise ParseError(f"expected a number, got {value!r}")
    if math.isnan(number) or math.isinf(number):
        raise ParseError(f"expected a finite number, got {value!r}")
    return number


def _str(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise ParseError(f"expected a string, got {value!r}")


def _bool(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if value in (0, 1):
        return bool(value)
    raise ParseError(f"expected a boolean or 0/1, got {value!r}")


def _timestamp(value: Any) -> datetime | None:
    """ISO-8601 (`2013-04-28T18:47:21.000Z`) or unix seconds (fear & greed sends them as strings)."""
    if value is None or value == "":
        return None
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, timezone.utc)
        if isinstance(value, str):
            if value.isdigit():
                return datetime.fromtimestamp(int(value), timezone.utc)
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed.astimezone(timezone.utc) if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    except (ValueError, OverflowError, OSError):
        pass
    raise ParseError(f"expected a timestamp, got {value!r}")


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


def to_batch(cols: tuple[Column, ...], items: Iterable[tuple[str | None, dict]], snapshot_ts: datetime,
             run_id: str) -> pa.RecordBatch:
    """Typed rows of one page; ParseError names the item and field that did not fit."""
    schema = schema_of(cols)
    data: dict[str, list] = {f.name: [] for f in schema}
    for index, (key, item) in enumerate(items):
        if not isinstance(item, dict):
            raise ParseError(f"item {key or index} is {type(item).__name__}, not an object")
        try:
            for col in cols:
                data[col.name].append(col.read(item, key))
        except ParseError as err:
            raise ParseError(f"item {key or item.get('id', index)!r}: {err.what}") from None
        data["snapshot_timestamp"].append(snapshot_ts)
        data["run_id"].append(run_id)
    try:
        return pa.RecordBatch.from_pydict(data, schema=schema)
    except (pa.ArrowException, OverflowError) as err:  # e.g. an id beyond 64 bits
        raise ParseError(f"values do not fit the bronze schema: {err}") from None
