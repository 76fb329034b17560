"""Validating Python values and converting them to and from driver values."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from dataflow.errors import ValidationError
from dataflow.models import FieldInfo, Kind, ModelInfo

if TYPE_CHECKING:
    from dataflow.dialects.base import Dialect

__all__ = ["Codec", "dump_json", "utcnow"]


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


# One encoder for every call: json.dumps() with options builds a new one each time.
_ENCODER = json.JSONEncoder(allow_nan=False, ensure_ascii=False, separators=(",", ":"))


def dump_json(value: Any, where: str) -> str:
    """Serialize ``value`` as compact JSON, refusing NaN/Infinity and foreign types."""
    try:
        return _ENCODER.encode(value)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{where}: value is not JSON-serializable ({exc})") from exc


def _check_str(f: FieldInfo, v: Any) -> Any:
    if not isinstance(v, str):
        raise ValidationError(f"field {f.name!r} expects str, got {type(v).__name__}")
    return v


def _check_int(f: FieldInfo, v: Any) -> Any:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValidationError(f"field {f.name!r} expects int, got {type(v).__name__}")
    return v


def _check_float(f: FieldInfo, v: Any) -> Any:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ValidationError(f"field {f.name!r} expects float, got {type(v).__name__}")
    if not math.isfinite(v):
        raise ValidationError(f"field {f.name!r} does not accept {v!r}")
    return float(v)


def _check_bool(f: FieldInfo, v: Any) -> Any:
    if not isinstance(v, bool):
        raise ValidationError(f"field {f.name!r} expects bool, got {type(v).__name__}")
    return v


def _check_datetime(f: FieldInfo, v: Any) -> Any:
    if not isinstance(v, datetime):
        raise ValidationError(f"field {f.name!r} expects datetime, got {type(v).__name__}")
    if v.tzinfo is None or v.utcoffset() is None:
        raise ValidationError(f"field {f.name!r} needs a timezone-aware datetime")
    return v.astimezone(UTC)


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


class Codec:
    """Per-model conversion between Python values and one dialect's driver values."""

    def __init__(self, model: ModelInfo, dialect: Dialect) -> None:
        self.model = model
        self.columns = tuple(model.fields)
        self._enc = {n: dialect.encoder(f.kind) for n, f in model.fields.items()}
        self._fields = {n: (f, _CHECKS[f.kind], self._enc[n]) for n, f in model.fields.items()}
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
                    raise ValidationError(f"field {key!r} of {self.model.name} is managed")
                raise ValidationError(f"unknown field {key!r} for model {self.model.name}")


def _then_json(dec: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def decode(v: Any) -> Any:
        return json.loads(dec(v))

    return decode
