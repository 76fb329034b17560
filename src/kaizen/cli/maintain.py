"""``kaizen maintain --every SECONDS``: the spec's periodic cleanup, as a service.

Each pass escalates or times out overdue approvals (as their policy says) and
deletes expired sessions. Every row changes at most once however many instances
run, so several can run at once.
SIGINT or SIGTERM stops the loop after the current pass.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from typing import Any

from kaizen import service

__all__ = ["maintain", "register"]


async def maintain(
    url: str, every: float, stop: asyncio.Event, *, passes: int | None = None
) -> int:
    """Run maintenance passes every ``every`` seconds until ``stop`` is set.

    Args:
        url: Database URL.
        every: Seconds between passes.
        stop: Set it to stop after the current pass.
        passes: Stop after this many passes (None: run until stopped).

    Returns:
        How many passes ran.
    """
    done = 0
    async with service.Kaizen.open(url) as k:
        while not stop.is_set() and (passes is None or done < passes):
            result = await service.maintain_once(k)
            done += 1
            sys.stdout.write(
                f"pass {done}: timed out {result['approvals_timed_out']} approval(s), "
                f"escalated {result['approvals_escalated']} approval(s), "
                f"deleted {result['sessions_deleted']} session(s)\n"
            )
            sys.stdout.flush()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=every)
    return done


async def _handle(args: argparse.Namespace) -> int:
    if args.every <= 0:
        raise ValueError("--every must be a positive number of seconds")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await maintain(args.database_url, args.every, stop, passes=args.passes)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    sys.stdout.write("maintenance stopped\n")
    return 0


def register(commands: Any) -> None:
    """Add ``maintain`` to the ``kaizen`` command."""
    parser = commands.add_parser(
        "maintain",
        help="escalate or time out overdue approvals and delete expired sessions periodically",
    )
    parser.add_argument("--every", type=float, default=300.0, metavar="SECONDS")
    parser.add_argument("--passes", type=int, default=None, help="stop after this many passes")
    parser.set_defaults(handler=_handle)
