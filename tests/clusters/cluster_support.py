"""Helpers of the cluster tests: worker processes and reading a cluster consistently."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import workers
from workers import together

__all__ = ["Worker", "causal", "together"]

WORKER = Path(__file__).with_name("cluster_worker.py")


class Worker(workers.Worker):
    """An app instance: a Python process running ``cluster_worker.py``."""

    @classmethod
    async def start(cls, command: str, **args: Any) -> workers.Worker:
        return await cls.spawn(WORKER, command, json.dumps(args))


def causal(url: str) -> str:
    """``url`` reading what every node committed before (Galera's ``wsrep_sync_wait``)."""
    return url + ("&" if "?" in url else "?") + "wsrep_sync_wait=1"
