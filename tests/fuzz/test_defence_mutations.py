"""The fuzzer's mutation score (issue 10): for each defence a scenario can switch off, a short
campaign of the attacker machine (tests/fuzz/attacker.py) with that defence off must find the
attack it stops, by tripping an economic invariant; with every defence on, the same campaign
(tests/fuzz/test_attacker.py) finds none. Each campaign is derandomized, so it explores the
same ground every time, and stops at the first failure without shrinking.

`python -m tests.fuzz.test_defence_mutations` prints the table: defence, steps to find, the
invariant tripped.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from tests.fuzz.attacker import with_defences
from tests.fuzz.stateful_base import RunStats

# (defence switched off, its unsafe value)
MUTATIONS = [
    ("nav_at_close_price", False),
    ("worse_price_when_invalid", False),
    ("liquidation_limit_scalar", 0.0),
    ("deviation_guard", 0.0),
]
# Not here: `reserve_factor` and `min_keeper_fee`. Neither stops a theft: the reserve bounds how
# much the Vault can come to owe (a close is credited, never refused, either way) and the
# minimum fee keeps keepers liquidating accounts under water. Their regression tests are F9 and
# F10 in tests/unit/test_attacks.py.
ECONOMIC = ("inv9_no_free_lunch", "inv10_lps_not_robbed", "inv12_always_closable", "inv13_share_maths",
            "inv_oracle_guard")
CAMPAIGN = settings(max_examples=60, stateful_step_count=25, derandomize=True, database=None, deadline=None,
                    phases=[Phase.generate], suppress_health_check=list(HealthCheck), print_blob=False)


@dataclass(frozen=True)
class Found:
    defence: str
    steps: int  # attacker-machine steps run before the failure
    invariant: str
    message: str


def hunt(defence: str, value: object) -> Found | None:
    """Run the campaign with `defence` set to `value`; what it found, or None."""
    machine = with_defences(**{defence: value})
    before = RunStats.steps  # the session's counter, which the suite's summary prints
    try:
        run_state_machine_as_test(machine, settings=CAMPAIGN)
    except AssertionError as exc:
        text = str(exc)
        return Found(defence, RunStats.steps - before, _invariant_of(text), text.splitlines()[0])
    return None


def _invariant_of(message: str) -> str:
    for prefix, name in (("free lunch", "inv9_no_free_lunch"), ("the LP share price", "inv10_lps_not_robbed"),
                         ("closes refused", "inv12_always_closable"), ("share maths", "inv13_share_maths"),
                         ("oracle", "inv_oracle_guard")):
        if message.startswith(prefix):
            return name
    return "accounting"


@pytest.mark.parametrize(("defence", "value"), MUTATIONS, ids=[m[0] for m in MUTATIONS])
def test_switching_a_defence_off_lets_the_fuzzer_find_its_attack(defence: str, value: object) -> None:
    found = hunt(defence, value)
    assert found is not None, f"with {defence} = {value}, the campaign found nothing"
    assert found.invariant in ECONOMIC, found  # an attack that keeps the books balanced


def main() -> None:
    print(f"{'defence off':<28} {'steps to find':>14}  invariant tripped")
    for defence, value in MUTATIONS:
        found = hunt(defence, value)
        if found is None:
            print(f"{defence + ' = ' + str(value):<28} {'not found':>14}")
        else:
            print(f"{defence + ' = ' + str(value):<28} {found.steps:>14,}  {found.invariant}: {found.message[:90]}")


if __name__ == "__main__":
    main()
