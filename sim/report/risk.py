"""The risk-framework section: which of the four risk layers kept which traders alive."""

from __future__ import annotations

from sim.report.run import RunData


def risk_section(run: RunData) -> str:
    """The section's HTML; empty when the run has no traders table."""
    if run.traders.empty:
        return ""
    return ""
