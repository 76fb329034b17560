"""The Hypothesis settings of every property: how many examples, repeatable under CI.

Examples per property: ``PROPERTY_EXAMPLES`` (default 500 with ``CI=true``, 60
otherwise). With ``CI=true`` the examples are derandomized, so a CI run is repeatable.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

CI = os.environ.get("CI", "").lower() == "true"
EXAMPLES = int(os.environ.get("PROPERTY_EXAMPLES", "500" if CI else "60"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=CI,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
