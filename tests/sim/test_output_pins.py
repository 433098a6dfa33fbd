"""Pinned outputs: the SHA-256 of `events.csv`, `steps.csv` and `summary.json` of two shipped
scenarios, run short on revm. A change meant to be invisible (speed-ups, refactors of the
chain layer, the facade, the agents' reads or the recorder's) must leave them as they are.

A change that alters the contracts or the tables on purpose updates `PINS` in the same
commit and says why in its message. To print the new dict, ready to paste over `PINS`:

    .venv/bin/python -m tests.sim.test_output_pins

(about 20 seconds; it runs the same scenarios as the test and prints their hashes).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from sim.engine import run_scenario
from sim.scenario import load_scenario

PINNED_FILES = ("events.csv", "steps.csv", "summary.json")

# (shipped scenario, steps) -> file -> SHA-256 of its bytes.
# flash-crash: liquidations, bad debt, insurance drawdown and ADL after the step-150 gap.
# calm: the benchmark's scenario; every trader kind's reads and risk rules, no liquidation.
PINS: dict[tuple[str, int], dict[str, str]] = {
    ("flash-crash", 170): {
        "events.csv": "64c421810c33894f489e892b93e770fb7272322f58169dd890f22d02e8bb52f6",
        "steps.csv": "00b17ab88fd0c8a1774ef3ad71598e36b675fb885942bb921304469c2f9ba680",
        "summary.json": "55b6b1695fe2ce0ae2f4e808d4bcdc0e25fd67c233803b8beffebe8f4756b595",
    },
    ("calm", 150): {
        "events.csv": "ea1f2f1cd553eda0dd8f4146bf9607c68772a205eed86805faab5aeb5039fdb6",
        "steps.csv": "1aa193079ca1af71acf6d9ff24466bc5fc7651bdefe6956bf441c4024157c6a6",
        "summary.json": "f68525c9b03302931679f5e0e6369544adcc92de152ce72a26d10333e45f65c2",
    },
}

UPDATE_COMMAND = ".venv/bin/python -m tests.sim.test_output_pins"


def output_hashes(scenario: str, steps: int, out: Path) -> dict[str, str]:
    """Run `scenario` for `steps` steps on revm into `out`; the SHA-256 of each pinned file."""
    run_scenario(load_scenario(scenario).with_overrides(steps=steps), backend="revm", out_dir=out,
                 report=False, progress=False)
    return {name: hashlib.sha256((out / name).read_bytes()).hexdigest() for name in PINNED_FILES}


def format_pins(pins: dict[tuple[str, int], dict[str, str]]) -> str:
    """`pins` as the Python source of the `PINS` assignment."""
    lines = ["PINS: dict[tuple[str, int], dict[str, str]] = {"]
    for key, hashes in pins.items():
        lines.append(f'    ("{key[0]}", {key[1]}): {{')
        lines += [f'        "{name}": "{digest}",' for name, digest in hashes.items()]
        lines.append("    },")
    lines.append("}")
    return "\n".join(lines)


@pytest.mark.parametrize(("scenario", "steps"), list(PINS), ids=[f"{s}-{n}" for s, n in PINS])
def test_outputs_match_their_pins(scenario: str, steps: int, tmp_path: Path) -> None:
    got = output_hashes(scenario, steps, tmp_path / "run")
    changed = [name for name in PINNED_FILES if got[name] != PINS[(scenario, steps)][name]]
    assert not changed, (
        f"{scenario} ({steps} steps): {', '.join(changed)} changed. If that is on purpose (a contract or "
        f"table change), update PINS in {__file__} (`{UPDATE_COMMAND}` prints it) and say why in the commit; "
        f"new hashes: {got}"
    )


def main() -> int:
    """Print the current outputs' hashes as a `PINS` dict."""
    import tempfile

    current: dict[tuple[str, int], dict[str, str]] = {}
    with tempfile.TemporaryDirectory(prefix="perpsim-pins-") as tmp:
        for scenario, steps in PINS:
            current[(scenario, steps)] = output_hashes(scenario, steps, Path(tmp) / f"{scenario}-{steps}")
    print(format_pins(current))
    stale = [f"{s}-{n}" for (s, n), hashes in current.items() if hashes != PINS[(s, n)]]
    print(f"# {'differs from PINS: ' + ', '.join(stale) if stale else 'same as PINS'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
