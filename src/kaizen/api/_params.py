"""Validating query strings and JSON bodies; every failure is a 422 before any state change."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import Any

from starlette.datastructures import QueryParams
from starlette.requests import Request

from kaizen import service
from kaizen.api._errors import ApiError
from kaizen.governance.models import MAX_REASON

__all__ = [
    "MAX_BODY",
    "MAX_LIMIT",
    "MAX_REASON",
    "STATUSES",
    "body_object",
    "body_str",
    "body_time",
    "json_object",
    "query",
    "query_bool",
    "query_int",
    "query_str",
]

#: Largest accepted request body, in bytes.
MAX_BODY = 64 * 1024
#: Largest page size of the list endpoints.
MAX_LIMIT = 500
#: The statuses ``?status=`` accepts (``all`` included).
STATUSES: tuple[str, ...] = service.STATUSES


def query(request: Request, allowed: Collection[str]) -> QueryParams:
    """The query parameters, rejecting unknown or repeated ones (a typo must not widen a list)."""
    params = request.query_params
    for key in params:
        if key not in allowed:
            raise ApiError(422, f"unknown query parameter {key!r}; allowed: {', '.join(allowed)}")
        if len(params.getlist(key)) > 1:
            raise ApiError(422, f"query parameter {key!r} given more than once")
    return params


def query_str(params: QueryParams, name: str, *, choices: Collection[str] = ()) -> str | None:
    """An optional non-empty string parameter of at most 255 characters."""
    value = params.get(name)
    if value is None:
        return None
    if not value.strip() or len(value) > 255:
        raise ApiError(422, f"{name} must be a non-empty string of at most 255 characters")
    if choices and value not in choices:
        raise ApiError(422, f"{name} must be one of: {', '.join(choices)}")
    return value


def query_int(params: QueryParams, name: str, *, default: int, low: int, high: int) -> int:
    """An optional integer parameter within ``[low, high]``."""
    raw = params.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit():
        raise ApiError(422, f"{name} must be an integer between {low} and {high}")
    value = int(raw)
    if not low <= value <= high:
        raise ApiError(422, f"{name} must be an integer between {low} and {high}")
    return value


def query_bool(params: QueryParams, name: str) -> bool:
    """An optional boolean parameter (``true``/``false``, ``1``/``0``); default False."""
    raw = params.get(name)
    if raw is None:
        return False
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise ApiError(422, f"{name} must be true or false")


async def json_object(
    request: Request, *, allowed: Collection[str] | None, empty: bool = True
) -> dict[str, Any]:
    """The request body as a JSON object with only ``allowed`` keys (None: any); an empty
    body is ``{}`` (with ``empty`` False: refused).

    Raises:
        ApiError: 422 for a body that is too large, not JSON, not an object, or has other
            keys.
    """
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise ApiError(422, f"request body larger than {MAX_BODY} bytes")
    if not body.strip() and empty:
        return {}
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(422, f"request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise ApiError(422, "request body is nested too deeply") from None
    if not isinstance(data, dict):
        raise ApiError(422, "request body must be a JSON object")
    unknown = [] if allowed is None else sorted(set(data) - set(allowed))
    if unknown:
        hint = " (the approver is the authenticated user)" if _names_a_user(unknown) else ""
        raise ApiError(422, f"unknown field(s) in body: {', '.join(unknown)}{hint}")
    return data


def _names_a_user(keys: list[str]) -> bool:
    return any(word in key.lower() for key in keys for word in ("approver", "user", "by"))


def body_str(body: Mapping[str, Any], name: str) -> str | None:
    """An optional string field of a JSON body; absent or null is None (what the text
    may be, the manager checks: its refusals are 422s too).

    Raises:
        ApiError: 422 for another type.
    """
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(422, f"{name} must be a string, not {_json_type(value)}")
    return value


def body_object(body: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    """An optional JSON-object field of a body; absent or null is None.

    Raises:
        ApiError: 422 for any other JSON value.
    """
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ApiError(422, f"{name} must be a JSON object, not {_json_type(value)}")
    return value


def body_time(body: Mapping[str, Any], name: str) -> datetime | None:
    """An optional ISO 8601 date-time with a UTC offset (``2030-01-31T18:00:00Z``), in UTC.

    Raises:
        ApiError: 422 for anything else, a time without an offset included.
    """
    text = body_str(body, name)
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ApiError(
            422, f"{name} must be an ISO 8601 date-time, e.g. 2030-01-31T18:00:00Z"
        ) from None
    if value.utcoffset() is None:
        raise ApiError(422, f"{name} needs a UTC offset (Z or +hh:mm): {text!r} has none")
    return value.astimezone(UTC)


def _json_type(value: object) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}
    names.update({list: "an array", dict: "an object"})
    return names.get(type(value), type(value).__name__)
