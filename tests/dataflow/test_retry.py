"""RetryPolicy: bounded, jittered retries of work that lost a race, nothing else."""

from __future__ import annotations

from typing import Any

import pytest

from dataflow import (
    ConcurrencyError,
    ConfigurationError,
    ConnectionLostError,
    DataFlow,
    RetryPolicy,
    ValidationError,
)


@pytest.mark.parametrize(
    "kwargs",
    [{"attempts": 0}, {"attempts": 1.5}, {"attempts": True}, {"base_delay": -1}, {"max_delay": 61}],
)
def test_bad_policies_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        RetryPolicy(**kwargs)


async def test_lost_races_are_retried_until_one_wins() -> None:
    calls: list[int] = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConcurrencyError("deadlock")
        return "done"

    assert await RetryPolicy(attempts=3, base_delay=0).run(flaky) == "done"
    assert len(calls) == 3


async def test_the_last_loss_is_raised_and_other_errors_at_once() -> None:
    calls: list[int] = []

    async def always(exc: Exception) -> None:
        calls.append(1)
        raise exc

    with pytest.raises(ConcurrencyError):
        await RetryPolicy(attempts=2, base_delay=0).run(lambda: always(ConcurrencyError("x")))
    assert len(calls) == 2
    with pytest.raises(ConnectionLostError):  # may have committed: never retried
        await RetryPolicy(attempts=5).run(lambda: always(ConnectionLostError("x")))
    assert len(calls) == 3


def test_delays_grow_and_stay_within_bounds() -> None:
    policy = RetryPolicy(base_delay=0.01, max_delay=0.05)
    for attempt in range(1, 8):
        assert 0 <= policy.delay(attempt) <= min(0.05, 0.01 * 2 ** (attempt - 1))


def test_options_spelled_in_the_url_or_as_numbers() -> None:
    d = DataFlow("postgresql://u@h/x?pool_size=3", command_timeout=0).dialect
    assert d.options["pool_size"] == 3 and d.command_timeout is None
    with pytest.raises(ConfigurationError, match="sslrootcert must be a file path"):
        DataFlow("postgresql://u@h/x", sslrootcert="")
