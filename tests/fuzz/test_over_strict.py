"""The fuzz suite catches a contract that refuses what it should allow.

Each case compiles a mutated copy of one contract, a source replacement that makes valid
actions revert with a reason the contract already gives (the real contracts have no
test-only switch), deploys the protocol with it, and runs the state machine with the `ci`
settings. The run must fail on the machine's refusal check: the action reverted with that
reason "but that is not the case" (tests/fuzz/refusals.py). A suite that accepted the reason
unconditionally, as it once did, passes them all. One mutant per contract that refuses: the
Exchange (a trade's margin, priced at the worse end of a disputed band), the Vault (an LP's
reserve) and the Liquidator (the per-block limit); the predicates of the rarer reasons
(the Exchange's reserve, ADL's target cap, the Vault's illiquid paths) are shown both ways
on hand-built states in test_refusals.py.

Mutating the Exchange costs a compile of it (about 15 s on a clean checkout); the
others are small. Compiled mutants are cached by source hash like every artifact.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import Phase
from hypothesis.stateful import run_state_machine_as_test

import sim.protocol
from sim.chain import Artifact, compile_contract, compile_project
from sim.chain.compiler import CONTRACTS_DIR
from tests.fuzz.settings import fuzz_settings
from tests.fuzz.stateful_base import ProtocolMachine
from tests.fuzz.test_stateful import LiquidationFuzz, ProtocolFuzz


@dataclass(frozen=True)
class Mutant:
    """`contract` with `original` replaced by `mutated`, which must refuse with `reason`."""

    id: str
    contract: str
    original: str
    mutated: str
    reason: str
    machine: type[ProtocolMachine]


MUTANTS = [
    Mutant("trade margin doubled", "Exchange",
           '''    if adds_risk:
        assert h.equity >= convert(h.initial_margin, int256), "exchange: below initial margin"''',
           '''    if adds_risk:
        assert h.equity >= 2 * convert(h.initial_margin, int256), "exchange: below initial margin"''',
           "exchange: below initial margin", LiquidationFuzz),
    Mutant("LP reserve quadrupled", "Vault",
           'assert (balance - amount) * PRECISION >= reserve + debt, "vault: below reserve"',
           'assert (balance - amount) * PRECISION >= 4 * reserve + debt, "vault: below reserve"',
           "vault: below reserve", ProtocolFuzz),
    Mutant("no partial liquidation", "Liquidator",
           'assert close > 0, "liquidator: limit reached"',
           'assert close == size, "liquidator: limit reached"',
           "liquidator: limit reached", LiquidationFuzz),
]


def compile_mutant(mutant: Mutant, workdir: Path) -> dict[str, Artifact]:
    """The project's artifacts, with `mutant.contract` compiled from its mutated source."""
    contracts = workdir / "contracts"
    shutil.copytree(CONTRACTS_DIR, contracts)
    path = contracts / f"{mutant.contract}.vy"
    source = path.read_text()
    assert source.count(mutant.original) == 1, f"{mutant.id}: the original text is not in {mutant.contract}.vy once"
    path.write_text(source.replace(mutant.original, mutant.mutated))
    return {**compile_project(), mutant.contract: compile_contract(path, search_paths=[contracts])}


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.id for m in MUTANTS])
def test_fuzz_suite_catches_an_over_strict_contract(mutant: Mutant, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    artifacts = compile_mutant(mutant, tmp_path)
    monkeypatch.setattr(sim.protocol, "compile_project", lambda *args, **kwargs: artifacts)
    machine = type(f"OverStrict{mutant.machine.__name__}", (mutant.machine,), {})
    settings = fuzz_settings(profile="ci", phases=[Phase.generate], report_multiple_bugs=False)
    with pytest.raises(AssertionError, match=f"reverted with {mutant.reason!r} but that is not the case"):
        run_state_machine_as_test(machine, settings=settings)
