"""The fuzz suite's hypothesis profiles (tests/fuzz/settings.py): HYPOTHESIS_PROFILE selects
one, `ci` by default. At the end of a session the summary says how many stateful steps ran."""

from __future__ import annotations

from tests.fuzz import settings as fuzz_profiles
from tests.fuzz.stateful_base import RunStats


def pytest_terminal_summary(terminalreporter) -> None:
    if RunStats.examples:
        terminalreporter.write_line(
            f"fuzz ({fuzz_profiles.profile_name()} profile): {RunStats.steps} stateful steps "
            f"in {RunStats.examples} examples")
