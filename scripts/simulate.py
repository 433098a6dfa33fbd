"""Run a perpsim scenario from ape: `ape run simulate SCENARIO [options]`.

The same command as `perpsim run` (sim/cli.py), with the same options: a shipped scenario's
name or a TOML file, `--seed`, `--steps`, `--backend revm|pyevm|rpc`, `--rpc-url`, `--out`.
The simulation runs on its own chain (revm by default); to drive a node, such as the devnet,
pass `--backend rpc --rpc-url URL`.
"""

from __future__ import annotations

from sim.cli import run_command

cli = run_command
