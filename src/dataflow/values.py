"""Validating Python values and converting them to and from driver values."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from dataflow.errors import ValidationError
from dataflow.jsonvalues import INT64, describe, dump_json, text_problem
from dataflow.models import AUTO_FIELDS, FieldInfo, Kind, ModelInfo

if TYPE_CHECKING:
    from dataflow.dialects.base import Dialect

__all__ = ["MAX_KEY_LENGTH", "MAX_TEXT_BYTES", "Codec", "dump_json", "utcnow"]

#: Longest text of an indexed str field (id included), in characters.
MAX_KEY_LENGTH = 255
#: Largest text of any other str field, in UTF-8 bytes (MySQL's MEDIUMTEXT).
MAX_TEXT_BYTES = 16_777_215
#: Datetimes every database stores (MySQL's DATETIME range), as aware UTC.
_EARLIEST = datetime(1000, 1, 1, tzinfo=UTC)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def _check_str(f: FieldInfo, v: Any) -> Any:
    if not isinstance(v, str):
        raise ValidationError(f"field {f.name!r} expects str, got {type(v).__name__}")
    if "\x00" in v or not v.isascii():  # the slow check only where it can fail
        problem = text_problem(v)
        if problem is not None:
            raise ValidationError(f"field {f.name!r} {problem}")
    return v


def _check_int(f: FieldInfo, v: Any) -> Any:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValidationError(f"field {f.name!r} expects int, got {type(v).__name__}")
    if not INT64[0] <= v <= INT64[1]:
        raise ValidationError(f"field {f.name!r} takes 64-bit integers, got {describe(v)}")
    return v


def _check_float(f: FieldInfo, v: Any) -> Any:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ValidationError(f"field {f.name!r} expects float, got {type(v).__name__}")
    try:
        value = float(v)
    except OverflowError:
        value = math.inf
    if not math.isfinite(value):
        raise ValidationError(f"field {f.name!r} does not accept {describe(v)}")
    return value + 0.0  # -0.0 is stored as 0.0: not every database keeps the sign


def _check_bool(f: FieldInfo, v: Any) -> Any:
    if not isinstance(v, bool):
        raise ValidationError(f"field {f.name!r} expects bool, got {type(v).__name__}")
    return v


def _check_datetime(f: FieldInfo, v: Any) -> Any:
    if not isinstance(v, datetime):
        raise ValidationError(f"field {f.name!r} expects datetime, got {type(v).__name__}")
    if v.tzinfo is None or v.utcoffset() is None:
        raise ValidationError(f"field {f.name!r} needs a timezone-aware datetime")
    try:
        value = v.astimezone(UTC)
    except OverflowError:
        value = None
    if value is None or value < _EARLIEST:
        raise ValidationError(
            f"field {f.name!r} takes datetimes from year 1000 to 9999 (UTC), got {v.isoformat()}"
        )
    return value


def _check_json(f: FieldInfo, v: Any) -> Any:
    expected = list if f.is_list else dict
    if not isinstance(v, expected):
        raise ValidationError(
            f"field {f.name!r} expects {expected.__name__}, got {type(v).__name__}"
        )
    return dump_json(v, f"field {f.name!r}")


_CHECKS: dict[Kind, Callable[[FieldInfo, Any], Any]] = {
    Kind.STR: _check_str,
    Kind.INT: _check_int,
    Kind.FLOAT: _check_float,
    Kind.BOOL: _check_bool,
    Kind.DATETIME: _check_datetime,
    Kind.JSON: _check_json,
}


#: Characters of text that surely fit in MAX_TEXT_BYTES (4 bytes at most each).
_SURE_TEXT = MAX_TEXT_BYTES // 4


def _check_key(f: FieldInfo, v: Any) -> Any:
    """An indexed str field: MySQL's key columns hold 255 characters."""
    if type(v) is str and v.isascii() and "\x00" not in v and len(v) <= MAX_KEY_LENGTH:
        return v  # the common case, in one test
    v = _check_str(f, v)
    if len(v) > MAX_KEY_LENGTH:
        raise ValidationError(
            f"field {f.name!r} is indexed and takes at most {MAX_KEY_LENGTH} characters"
        )
    return v


def _check_text(f: FieldInfo, v: Any) -> Any:
    """Any other str field: MySQL's MEDIUMTEXT holds 16 MiB."""
    if type(v) is str and v.isascii() and "\x00" not in v and len(v) <= _SURE_TEXT:
        return v  # the common case, in one test
    v = _check_str(f, v)
    if len(v) > _SURE_TEXT and len(v.encode()) > MAX_TEXT_BYTES:
        raise ValidationError(f"field {f.name!r} takes at most {MAX_TEXT_BYTES} bytes of text")
    return v


def _elements_keyed(check: Callable[[FieldInfo, Any], Any]) -> Callable[[FieldInfo, Any], Any]:
    """A JSON list check that also bounds each element: a membership index stores every
    element's JSON text as a key (255 characters on MySQL)."""

    def checked(f: FieldInfo, v: Any) -> Any:
        text = check(f, v)
        for element in v:
            # JSON text is at most 6 characters per character plus quotes: short ones fit.
            if type(element) is str and len(element) <= (MAX_KEY_LENGTH - 2) // 6:
                continue
            if len(dump_json(element, f"field {f.name!r}")) > MAX_KEY_LENGTH:
                raise ValidationError(
                    f"field {f.name!r} has a membership index: each element's JSON "
                    f"takes at most {MAX_KEY_LENGTH} characters"
                )
        return text

    return checked


def _field_check(model: ModelInfo, f: FieldInfo) -> Callable[[FieldInfo, Any], Any]:
    if f.kind is Kind.STR:
        return _check_key if f.name in model.keyed_fields else _check_text
    if f.name in model.membership:
        return _elements_keyed(_CHECKS[f.kind])
    return _CHECKS[f.kind]


class Codec:
    """Per-model conversion between Python values and one dialect's driver values."""

    def __init__(self, model: ModelInfo, dialect: Dialect) -> None:
        self.model = model
        self.columns = tuple(model.fields)
        self._enc = {n: dialect.encoder(f.kind) for n, f in model.fields.items()}
        self._fields = {
            n: (f, _field_check(model, f), self._enc[n]) for n, f in model.fields.items()
        }
        decoders: list[Callable[[Any], Any] | None] = []
        for f in model.fields.values():
            dec = dialect.decoder(f.kind)
            if f.kind is Kind.JSON:
                dec = load_json if dec is None else _then_json(dec)
            decoders.append(dec)
        self._decoders = tuple(decoders)
        #: Driver row (all columns, model order) -> record dict; built once per model.
        self.decode_row: Callable[[Sequence[Any]], dict[str, Any]] = _row_decoder(
            self.columns, self._decoders
        )

    def encode(self, name: str, value: Any) -> Any:
        """Validate one field value and convert it for the driver."""
        f, check, enc = self._fields[name]
        if value is None:
            if not f.nullable:
                raise ValidationError(f"field {name!r} of {self.model.name} cannot be None")
            return None
        value = check(f, value)
        return value if enc is None else enc(value)

    def encode_scalar(self, f: FieldInfo, value: Any) -> Any:
        """Convert a filter operand compared with field ``f``."""
        value = _CHECKS[f.kind](f, value)
        enc = self._enc[f.name]
        return value if enc is None else enc(value)

    def decode_rows(self, rows: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
        """Turn driver rows (all columns, model order) into record dicts."""
        return list(map(self.decode_row, rows))

    def check_keys(self, values: Mapping[str, Any], allowed: frozenset[str]) -> None:
        """Refuse unknown or managed fields in a write."""
        for key in values:
            if key not in allowed:
                if key in self.model.fields:
                    raise ValidationError(f"field {describe(key)} of {self.model.name} is managed")
                raise ValidationError(f"unknown field {describe(key)} for model {self.model.name}")


def _then_json(dec: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def decode(v: Any) -> Any:
        return load_json(dec(v))

    return decode


#: The C scanner json.loads ends in (the default decoder's: same values, same errors).
_scan_json: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def load_json(text: Any) -> Any:
    """``json.loads(text)``, without its per-call set-up for the text a column holds.

    The C scanner parses one JSON value; anything it does not consume whole (surrounding
    whitespace, trailing data, bytes, an error) goes through ``json.loads``, which gives the
    same value or raises the same error.
    """
    if type(text) is str:
        try:
            value, end = _scan_json(text, 0)
        except (StopIteration, ValueError):
            return json.loads(text)
        if end == len(text):
            return value
    return json.loads(text)


def _row_decoder(
    columns: Sequence[str], decoders: Sequence[Callable[[Any], Any] | None]
) -> Callable[[Sequence[Any]], dict[str, Any]]:
    """A function turning one driver row into a record dict, compiled for these columns.

    The row is unpacked into locals and the dict built in one display with constant keys;
    only columns with a decoder convert (None stays None): no per-column loop, no call for
    the columns the driver already returns as Python values. ``updated_at`` equal to
    ``created_at`` as stored (a record never updated: an insert writes both from one
    time) shares its decoded value instead of being decoded again.
    """
    namespace: dict[str, Any] = {}
    lines = [
        "def decode_row(row):",
        "    " + "".join(f"c{i}, " for i in range(len(columns))) + "= row",
    ]
    items = []
    index = {column: i for i, column in enumerate(columns)}
    created, updated = (index.get(name) for name in AUTO_FIELDS)
    for i, (column, dec) in enumerate(zip(columns, decoders, strict=True)):
        if dec is None:
            value = f"c{i}"
        else:
            namespace[f"d{i}"] = dec
            value = f"None if c{i} is None else d{i}(c{i})"
            if i == created and updated is not None and decoders[updated] is dec:
                lines.append(f"    v{i} = {value}")
                value = f"v{i}"
            elif i == updated and created is not None and decoders[created] is dec:
                value = f"v{created} if c{i} == c{created} else ({value})"
        items.append(f"{column!r}: {value}")
    lines.append(f"    return {{{', '.join(items)}}}")
    exec("\n".join(lines), namespace)  # names are literals (repr), values bound by name
    decode: Callable[[Sequence[Any]], dict[str, Any]] = namespace["decode_row"]
    return decode
