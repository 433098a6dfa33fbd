"""A tiny scripted session for the recorder and report tests, driven through `Protocol` on
revm the way the engine drives a scenario: each step the reporter prices, the traders act,
the keeper acts, the recorder records, and the chain mines one 12 s block.

The script: an LP funds the Vault; at step 0 alice (10k, long 45 ETH) and carol (2k, long
9 ETH) go long about 9x and bob (10k) goes short 5 ETH. At step `CRASH_STEP` the price
falls to 1,850, which puts alice and carol below maintenance margin; the keeper is out until
`KEEPER_STEP`, by when the price is 1,750 and both are under water, so both liquidations
leave bad debt that the insurance fund pays. Expected keeper delay: KEEPER_STEP - CRASH_STEP.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.chain import make_chain
from sim.metrics import Participant, Recorder
from sim.protocol import MarketConfig, Protocol, ProtocolConfig

STEPS = 10
STEP_SECONDS = 12
CRASH_STEP = 3
KEEPER_STEP = 6
PRICES = (2000.0, 2000.0, 1990.0, 1850.0, 1800.0, 1750.0, 1750.0, 1780.0, 1800.0, 1810.0)
SHOCKS = [{"step": CRASH_STEP, "kind": "price_jump"}, {"step": CRASH_STEP, "kind": "keeper_outage"}]
CONFIG = ProtocolConfig(
    markets=(MarketConfig(name="ETH", initial_price=2000.0, skew_scale=100_000.0, max_oi=1_000.0,
                          liquidation_limit_scalar=0.0),),  # the keeper clears every account in its block
    insurance_fund=10_000.0,
)


class Crash(RuntimeError):
    """Raised inside the step loop to simulate a run that dies."""


@dataclass
class Session:
    protocol: Protocol
    recorder: Recorder
    summary: dict[str, Any] | None
    accounts: dict[str, str]


def meta(backend: str = "revm") -> dict[str, Any]:
    return {"scenario": "scripted-crash", "description": "Two leveraged longs, a 12.5% crash and a late keeper.",
            "seed": 7, "backend": backend, "steps": STEPS, "step_seconds": STEP_SECONDS, "shocks": SHOCKS}


def run_session(run_dir: Path, backend: str = "revm", crash_at: int | None = None, finish: bool = True,
                keeper_step: int = KEEPER_STEP) -> Session:
    """Run the script into `run_dir`. `crash_at` raises inside the loop at that step and, as the
    engine does, finishes the run as partial; `finish=False` abandons the recorder (a killed run);
    `keeper_step` is the first step the keeper liquidates."""
    chain = make_chain(backend)
    protocol = Protocol.deploy(chain, CONFIG)
    names = ("lp", "alice", "bob", "carol", "keeper")
    accounts = {name: chain.new_account(name) for name in names}
    lp, alice, bob, carol, keeper = (accounts[n] for n in names)
    protocol.mint(lp, 1_000_000)
    protocol.lp_deposit(lp, 1_000_000)
    for trader, collateral in ((alice, 10_000), (bob, 10_000), (carol, 2_000)):
        protocol.mint(trader, collateral)
        protocol.deposit(trader, collateral)
    participants = [
        Participant(lp, 0, "lp", "lp"),
        Participant(alice, 0, "leveraged_whale", "trader"),
        Participant(bob, 0, "noise_trader", "trader"),
        Participant(carol, 0, "leveraged_whale", "trader"),
        Participant(keeper, 0, "liquidation_keeper", "keeper"),
        Participant(protocol.reporters[0], 0, "oracle_reporter", "reporter"),
    ]
    recorder = Recorder(run_dir, protocol, participants, meta(backend))
    summary = None
    try:
        for step in range(STEPS):
            if step == crash_at:
                raise Crash(f"simulated crash at step {step}")
            protocol.report_all("ETH", PRICES[step])
            if step == 0:
                protocol.trade(alice, "ETH", 45)
                protocol.trade(carol, "ETH", 9)
                protocol.trade(bob, "ETH", -5)
            if step >= keeper_step:
                for owner, sub in protocol.liquidatable_accounts():
                    protocol.liquidate(keeper, owner, "ETH", sub)
            recorder.record_step(step, {"ETH": PRICES[step]})
            chain.mine(STEP_SECONDS)
    except Crash as exc:
        summary = recorder.finish("partial", str(exc))
    else:
        if finish:
            summary = recorder.finish()
    return Session(protocol, recorder, summary, accounts)
