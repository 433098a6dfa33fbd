"""The fuzz suite's hypothesis profiles (tests/fuzz/settings.py): HYPOTHESIS_PROFILE selects
one, `ci` by default. test_coverage.py runs after test_stateful.py, whose run it reads. At the
end of a session the summary says how many stateful steps ran, and how many examples of each
machine reached each path test_coverage.py asserts."""

from __future__ import annotations

import pytest

from tests.fuzz import settings as fuzz_profiles
from tests.fuzz.stateful_base import PathCounts, RunStats


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Move test_coverage.py's tests to just after test_stateful.py's."""
    coverage = [i for i in items if i.path.name == "test_coverage.py"]
    stateful = [n for n, i in enumerate(items) if i.path.name == "test_stateful.py"]
    if not coverage or not stateful:
        return
    rest = [i for i in items if i.path.name != "test_coverage.py"]
    at = rest.index(items[stateful[-1]]) + 1
    items[:] = rest[:at] + coverage + rest[at:]


def pytest_terminal_summary(terminalreporter) -> None:
    if RunStats.examples:
        terminalreporter.write_line(
            f"fuzz ({fuzz_profiles.profile_name()} profile): {RunStats.steps} stateful steps "
            f"in {RunStats.examples} examples")
    from tests.fuzz.test_coverage import MACHINES, PATHS

    runs = {m.__name__: len(PathCounts.examples[m.__name__]) for m in MACHINES if PathCounts.examples.get(m.__name__)}
    if runs:
        terminalreporter.write_line("fuzz paths, examples reaching each: " + ", ".join(
            f"{path} " + "/".join(f"{PathCounts.reaching(m, events)}" for m in runs) for path, events in PATHS.items())
            + f" (of {' / '.join(f'{n} {m}' for m, n in runs.items())})")
