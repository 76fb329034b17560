"""``kaizen maintain --every SECONDS``: the spec's periodic cleanup, as a service.

Each pass escalates or times out overdue approvals (as their policy says) and
deletes expired sessions. Every row changes at most once however many instances
run, so several can run at once. Each pass is logged on stderr with its time and
counts (``--log-format json``: one JSON object per line); a pass that cannot reach
the database is logged and the next one tries again.
SIGINT or SIGTERM stops the loop after the current pass.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import time
from typing import Any

from dataflow.errors import ConnectionLostError
from kaizen import service
from kaizen.cli._logs import FORMATS, logging_to_stderr

__all__ = ["maintain", "register"]

logger = logging.getLogger("kaizen.maintain")


async def _one_pass(k: service.Kaizen, number: int) -> bool:
    """Run and log pass ``number``; False when the database could not be reached."""
    start = time.perf_counter()
    try:
        result = await service.maintain_once(k)
    except ConnectionLostError as exc:  # down for now (timeouts included): next pass
        logger.error(
            "pass %d failed: %s",
            number,
            exc,
            extra={"fields": {"pass": number, "ok": False, "error": type(exc).__name__}},
        )
        return False
    elapsed_ms = round((time.perf_counter() - start) * 1000, 1)
    logger.info(
        "pass %d: timed out %d approval(s), escalated %d approval(s), deleted %d session(s)",
        number,
        result["approvals_timed_out"],
        result["approvals_escalated"],
        result["sessions_deleted"],
        extra={"fields": {"pass": number, "ok": True, **result, "duration_ms": elapsed_ms}},
    )
    return True


async def maintain(
    url: str, every: float, stop: asyncio.Event, *, passes: int | None = None
) -> tuple[int, bool]:
    """Run maintenance passes every ``every`` seconds until ``stop`` is set.

    Each pass is logged (logger ``kaizen.maintain``) with its counts; one that
    cannot reach the database is logged as an error, and the loop goes on.

    Args:
        url: Database URL.
        every: Seconds between passes.
        stop: Set it to stop after the current pass.
        passes: Stop after this many passes (None: run until stopped).

    Returns:
        How many passes ran, and whether the last one reached the database.

    Raises:
        DataFlowError: Other than an unreachable database (e.g. one refusing the
            credentials): the loop stops.
    """
    done, ok = 0, True
    async with service.Kaizen.open(url) as k:
        while not stop.is_set() and (passes is None or done < passes):
            done += 1
            ok = await _one_pass(k, done)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=every)
    return done, ok


async def _handle(args: argparse.Namespace) -> int:
    if args.every <= 0:
        raise ValueError("--every must be a positive number of seconds")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        with logging_to_stderr(args.log_format):
            logger.info(
                "maintenance every %g s", args.every, extra={"fields": {"every": args.every}}
            )
            ran, ok = await maintain(args.database_url, args.every, stop, passes=args.passes)
            logger.info("maintenance stopped", extra={"fields": {"passes": ran}})
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return 0 if ok else 6  # 6: the last pass could not reach the database


def register(commands: Any) -> None:
    """Add ``maintain`` to the ``kaizen`` command."""
    parser = commands.add_parser(
        "maintain",
        help="escalate or time out overdue approvals and delete expired sessions periodically",
        description=(
            "Run a maintenance pass every SECONDS: escalate or time out overdue approvals, "
            "delete expired sessions. Each pass is logged on stderr with its time and counts; "
            "a pass that cannot reach the database is logged and retried at the next one "
            "(exit 6 when the last pass failed)."
        ),
    )
    parser.add_argument("--every", type=float, default=300.0, metavar="SECONDS")
    parser.add_argument("--passes", type=int, default=None, help="stop after this many passes")
    parser.add_argument(
        "--log-format",
        choices=FORMATS,
        default="text",
        help="log lines as text or one JSON object each (default: %(default)s)",
    )
    parser.set_defaults(handler=_handle)
