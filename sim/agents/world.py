"""The conditions the engine imposes on a step: shocks in force and bribes paid.

The engine owns the `World`: each step it clears it and applies every shock whose window
covers the step (and every bribe still paid for). Agents only read it, through
`StepContext.world`: a reporter asks whether it is frozen, lagging or compromised, an LP
whether a run is on. This is how a shock reaches agents without any agent touching
another's state.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class World:
    """This step's shock conditions."""

    frozen_markets: set[str] = field(default_factory=set)  # oracle_freeze: no reports land
    oracle_lag: int = 0  # oracle_lag: reporters report the price of this many blocks ago (at least)
    compromised: dict[int, float] = field(default_factory=dict)  # reporter index -> price factor
    keepers_out: set[str] = field(default_factory=set)  # keeper kinds in outage this step
    keeper_min_reward: float = 0.0  # keeper_outage with unless_reward: USD a liquidation must pay its keeper
    lp_run: float = 0.0  # lp_run: fraction of its shares each LP tries to withdraw
    stressed: bool = False  # correlation_spike: correlated assets in their stress regime

    def clear(self) -> None:
        self.frozen_markets.clear()
        self.oracle_lag = 0
        self.compromised.clear()
        self.keepers_out.clear()
        self.keeper_min_reward = 0.0
        self.lp_run = 0.0
        self.stressed = False

    def compromise(self, reporter_indexes: range | list[int], factor: float) -> None:
        """Reporters `reporter_indexes` report the true price times `factor`."""
        for i in reporter_indexes:
            self.compromised[i] = factor
