"""Validating Python values and converting them to and from driver values."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from dataflow.errors import ValidationError
from dataflow.jsonvalues import INT64, describe, dump_json, text_problem
from dataflow.models import FieldInfo, Kind, ModelInfo

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
        decoders = []
        for f in model.fields.values():
            dec = dialect.decoder(f.kind)
            if f.kind is Kind.JSON:
                dec = json.loads if dec is None else _then_json(dec)
            decoders.append(dec)
        self._decoders = tuple(decoders)

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

    def decode_row(self, row: Sequence[Any]) -> dict[str, Any]:
        """Turn a driver row (all columns, model order) into a record dict."""
        return {
            name: (dec(v) if dec is not None and v is not None else v)
            for name, dec, v in zip(self.columns, self._decoders, row, strict=True)
        }

    def check_keys(self, values: Mapping[str, Any], allowed: frozenset[str]) -> None:
        """Refuse unknown or managed fields in a write."""
        for key in values:
            if key not in allowed:
                if key in self.model.fields:
                    raise ValidationError(f"field {describe(key)} of {self.model.name} is managed")
                raise ValidationError(f"unknown field {describe(key)} for model {self.model.name}")


def _then_json(dec: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def decode(v: Any) -> Any:
        return json.loads(dec(v))

    return decode
