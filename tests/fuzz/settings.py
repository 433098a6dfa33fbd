"""Hypothesis profiles for the fuzz suite, chosen by the HYPOTHESIS_PROFILE environment variable.

- `ci` (the default, what `make test` runs): 30 examples of 50 steps for each of the two
  state machines (about 3,000 stateful steps), a minute or so each on revm on a loaded
  two-core machine. Derandomized: the
  examples depend on the code alone, so CI explores the same ground on every run of a
  commit. (Hypothesis also draws some values from the literals of the project's modules
  that are loaded, so `pytest tests/fuzz` and `make test`, which loads every test module
  first, explore two different sets, each fixed.) The examples change when the code does;
  tests/fuzz/test_coverage.py then says whether they still reach every path it names.
- `campaign` (`make fuzz`): long runs; tests/fuzz/campaign.py drives it in batches.
- `dev`: a quick smoke run while editing.

The profiles are registered here and applied to the fuzz tests explicitly (`fuzz_settings()`),
not loaded globally, so they never change the settings of other tests in the same session.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings

PROFILE_ENV = "HYPOTHESIS_PROFILE"
DEFAULT_PROFILE = "ci"
# Each step deploys nothing but sends several transactions, so examples are slow and large
# by hypothesis' measure; that is their nature. Filtering is not suppressed: every strategy
# and rule builds a valid step by construction, so hypothesis abandons no example.
_SLOW_IS_FINE = [HealthCheck.too_slow, HealthCheck.data_too_large]

settings.register_profile(
    "ci", max_examples=30, stateful_step_count=50, deadline=None, print_blob=True,
    suppress_health_check=_SLOW_IS_FINE, derandomize=True,
)
settings.register_profile(
    "campaign", max_examples=200, stateful_step_count=100, deadline=None, print_blob=True,
    suppress_health_check=_SLOW_IS_FINE, database=None,
)
settings.register_profile(
    "dev", max_examples=8, stateful_step_count=30, deadline=None, print_blob=True,
    suppress_health_check=_SLOW_IS_FINE, phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
)


def profile_name() -> str:
    return os.environ.get(PROFILE_ENV, DEFAULT_PROFILE)


def fuzz_settings(profile: str | None = None, **overrides) -> settings:
    """The settings of `profile` (by default the selected one), with `overrides`; a clear
    error for an unknown profile."""
    name = profile or profile_name()
    try:
        base = settings.get_profile(name)
    except Exception:
        raise ValueError(f"{PROFILE_ENV}={name!r} is not a fuzz profile; expected one of: ci, campaign, dev") from None
    return settings(base, **overrides)
