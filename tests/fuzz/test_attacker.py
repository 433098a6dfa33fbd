"""The attacker state machine (tests/fuzz/attacker.py) with every defence on: no attack pays,
and the economic invariants hold beside the accounting ones."""

from __future__ import annotations

from tests.fuzz.attacker import AttackerMachine
from tests.fuzz.settings import fuzz_settings

TestAttacker = AttackerMachine.TestCase
TestAttacker.settings = fuzz_settings()
