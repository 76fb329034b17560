"""JSON error responses and the one place that maps domain errors to status codes."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dataflow.errors import DataFlowError
from kaizen.outcomes import outcome_of, public_message

__all__ = ["ApiError", "error_response", "exception_handlers"]

logger = logging.getLogger("kaizen.api")

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    415: "unsupported_media_type",
    422: "invalid_request",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(Exception):
    """An error the API reports as ``{"error": {"code": ..., "message": ...}}``.

    Args:
        status: The HTTP status.
        message: What went wrong, for people.
        code: Machine-readable code (default: derived from ``status``).
        headers: Extra response headers.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or _CODES.get(status, "error")
        self.headers = dict(headers or {})


def error_response(
    status: int, message: str, *, code: str | None = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """The JSON error document with ``status``."""
    # A message quoting input may hold lone surrogates, which UTF-8 cannot encode.
    text = message.encode("utf-8", "backslashreplace").decode("utf-8")
    body = {"error": {"code": code or _CODES.get(status, "error"), "message": text}}
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def _classify(exc: Exception) -> ApiError | None:
    """The API error for one of our errors (see :mod:`kaizen.outcomes`), or None."""
    if isinstance(exc, ApiError):
        return exc
    outcome = outcome_of(exc)
    if outcome is None or outcome.status == 500:
        return None
    if outcome.status >= 500:  # the client gets a generic text; the operator, ours
        logger.warning("%s: %s", outcome.code, exc)  # (our messages never hold passwords)
    return ApiError(outcome.status, public_message(exc), code=outcome.code)


async def _on_exception(request: Request, exc: Exception) -> Response:
    error = _classify(exc)
    if error is None:
        # Starlette re-raises it after this response, so the server logs the traceback;
        # the message may hold data we must not echo.
        return error_response(500, "internal server error")
    return error_response(error.status, error.message, code=error.code, headers=error.headers)


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, exc.detail, headers=exc.headers)


def exception_handlers() -> dict[Any, Any]:
    """Starlette exception handlers turning every error into a JSON error document."""
    return {
        HTTPException: _on_http_exception,
        Exception: _on_exception,
        ApiError: _on_exception,
        DataFlowError: _on_exception,
    }
