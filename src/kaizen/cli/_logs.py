"""Log lines of the long-running commands (``serve``, ``maintain``) on stderr.

``text``: ``2025-06-01T12:34:56.789Z INFO kaizen.maintain: pass 1: ...``.
``json``: one JSON object per line with ``time``, ``level``, ``logger``, ``message``,
the record's ``fields`` (``logger.info(..., extra={"fields": {...}})``: the request of
an access log line, the counts of a maintenance pass) and ``exception`` when there
is a traceback.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

__all__ = ["FORMATS", "JsonFormatter", "TextFormatter", "logging_to_stderr"]

FORMATS = ("text", "json")
_CORE = ("time", "level", "logger", "message")


def _time(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _fields(record: logging.LogRecord) -> Mapping[str, Any]:
    fields = getattr(record, "fields", None)
    return fields if isinstance(fields, Mapping) else {}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``time`` (UTC), ``level``, ``logger``, ``message``,
    then the record's ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": _time(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _fields(record).items():
            if key not in _CORE:
                data[key] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``<UTC time> <LEVEL> <logger>: <message>`` (then the traceback, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_time(record)} {record.levelname} {record.name}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


@contextmanager
def logging_to_stderr(log_format: str, level: int = logging.INFO) -> Iterator[None]:
    """Within the block, every logger's records of ``level`` and above go to stderr in
    ``log_format`` (``text`` or ``json``); the root logger is restored afterwards."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    before = root.level
    root.addHandler(handler)
    root.setLevel(level)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(before)
