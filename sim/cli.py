"""`perpsim`: run, list, validate and compare scenarios.

    perpsim run SCENARIO [--seed N] [--steps N] [--backend revm|pyevm|rpc] [--rpc-url URL] [--out DIR [--force]]
                         [--attach DEPLOYMENT.json] [--defence NAME=VALUE ...] [--defences off|on]
                         [--dashboard [--host H] [--port N]] [--pace SECONDS]
    perpsim sweep SCENARIO [--seeds N|A..B] [--grid KEY=V1,V2 ...] [--steps N] [--out DIR]
                           [--executor local|ray] [--workers N] [--address ADDR] [--reports] [--resume]
    perpsim attack SCENARIO --capital USD --horizon BLOCKS [--trials N] [--seed S] [--sampler cem|tpe]
                            [--at-step K ...] [--defence NAME=VALUE ...] [--moves KIND,...] [--out DIR [--force]]
    perpsim dashboard RUN_DIR [--host H] [--port N]
    perpsim list [--top] [--markets] [--prices] [--oracle] [--agents] [--shocks] [--defences]
    perpsim validate FILE [FILE ...]
    perpsim report RUN_DIR
    perpsim compare RUN_A RUN_B [--out FILE]
    perpsim --version

SCENARIO is a shipped scenario's name (`perpsim list`) or a TOML file. A scenario that does
not validate, with the command line's overrides applied, is reported on stderr, one line per
problem, with exit code 2, before any transaction is sent. A run writes a new directory,
`runs/<scenario>-<seed>-<timestamp>/` or `--out` (new or empty; `--force` replaces a run
there), and prints where its report is. Ctrl-C or a crash leaves that directory readable and
marked partial, its status.json saying what is missing; `perpsim report RUN_DIR` draws the
report of any run directory.
"""

from __future__ import annotations

import atexit
import sys
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from sim.chain import ChainError
from sim.scenario import DEFENCE_SIDES, Scenario, ScenarioError, load_scenario, parse_defence, shipped_scenarios

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

def _red_if_positive(value: Any) -> str | None:
    return "red" if isinstance(value, (int, float)) and value > 0 else None


def _red_if_false(value: Any) -> str | None:
    return "red" if value is False else None


HEADLINES: tuple[tuple[str, str, Any], ...] = (
    # (summary key, label, colour of the value or None)
    ("total_bad_debt", "bad debt (USD)", _red_if_positive),
    ("deficit_at_end", "deficit left (USD)", _red_if_positive),
    ("liquidation_count", "liquidations", None),
    ("bankruptcy_count", "bankruptcies (not liquidations)", _red_if_positive),
    ("liquidation_delay_blocks_median", "keeper delay, median (blocks)", None),
    ("adl_count", "ADL fills", None),
    ("trader_survival_rate", "trader survival", None),
    ("lp_pnl_usd", "LP PnL, marked to market (USD)", None),
    ("lp_share_price_change_pct", "LP share price change (%)", None),
    ("insurance_drawdown_pct", "insurance drawdown (%)", None),
    ("books_balance", "books balance", _red_if_false),
)
"""What `perpsim run` prints when a run ends; bad debt and a deficit in red when above zero."""


DEVNET_HINT = "start one with `make devnet` (anvil at http://127.0.0.1:8545), or pass the URL of a running node"


def _connect(backend: str, rpc_url: str | None, scenario: Scenario, attach: Path | None) -> tuple[Any, Any]:
    """The chain and protocol factory for `run_scenario`, the node checked before anything is
    written: (None, None) in process (the run makes its chain and deploys); for --backend rpc
    the node's chain; with --attach FILE, sim/deployment.py connects to the node, checks that it
    holds the deployment, and says when earlier runs have used it. Exit 2 with what to do."""
    from sim.deployment import DeploymentError, connect_to_deployment, transactions_since_deployment

    if attach is not None:
        try:
            chain, factory = connect_to_deployment(attach=attach, rpc_url=rpc_url, scenario=scenario)
        except DeploymentError as exc:
            _fail(f"perpsim: --attach {attach}: {exc}")
        except ChainError as exc:
            _fail(f"perpsim: --attach {attach}: {exc}\nis the devnet running? `make devnet` starts anvil and deploys "
                  f"the protocol again (writing a new .devnet/deployment.json); `make devnet-stop` stops it")
        used = transactions_since_deployment(attach, chain)
        if used:
            click.echo(f"perpsim: note: the deployment in {attach} has been used since it was deployed ({used} "
                       "transactions of its reporters since): this run continues from the state earlier runs left "
                       "(balances, positions, prices, insurance fund), not from a fresh deployment; `make devnet` "
                       "gives a fresh one")
        return chain, factory
    if backend == "rpc":
        from sim.chain import make_chain

        try:
            return make_chain("rpc", rpc_url=rpc_url), None
        except ChainError as exc:
            _fail(f"perpsim: --rpc-url {rpc_url}: {exc}\n{DEVNET_HINT}")
    return None, None


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> None:
    click.echo(message, err=True)
    sys.exit(code)


def _load(path_or_name: str, defences: tuple[str, ...] = (), seed: int | None = None,
          steps: int | None = None, side: str | None = None) -> Scenario:
    """The scenario with the command line's overrides, validated as one, or exit 2."""
    try:
        return load_scenario(path_or_name, defences=dict(parse_defence(d) for d in defences), seed=seed, steps=steps,
                             side=side)
    except ScenarioError as exc:
        _fail(f"perpsim: invalid scenario ({len(exc.problems)} problem{'s' if len(exc.problems) != 1 else ''}):\n{exc}")
        raise  # unreachable: _fail exits


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="perpsim", prog_name="perpsim", message="%(prog)s %(version)s")
def main() -> None:
    """perpsim: adversarial agents against an on-chain perpetuals exchange, block by block."""


@main.command("run")
@click.argument("scenario")
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), help="override the scenario's seed")
@click.option("--steps", type=click.IntRange(1), help="override the number of steps")
@click.option("--backend", type=click.Choice(["revm", "pyevm", "rpc"]), default="revm", show_default=True)
@click.option("--rpc-url", help="JSON-RPC node for --backend rpc (e.g. anvil at http://127.0.0.1:8545)")
@click.option("--attach", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="run on an existing deployment (`make devnet` writes .devnet/deployment.json) instead of "
              "deploying; implies --backend rpc, and --rpc-url defaults to the file's")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="run directory, new or empty (default: runs/<scenario>-<seed>-<timestamp>)")
@click.option("--force", is_flag=True, help="let --out replace the run already in that directory")
@click.option("--defence", "defences", multiple=True, metavar="NAME=VALUE",
              help="set a [defences] flag, e.g. --defence deviation_guard=0.1 (repeatable); with the same "
              "seed, two runs differ only by that defence: compare them with `perpsim compare`")
@click.option("--defences", "side", type=click.Choice(DEFENCE_SIDES),
              help="run one side of a scenario with a [defended] table: off = its [defences] as written (the "
              "failure), on = with [defended] set over them; --defence NAME=VALUE applies over either")
@click.option("--progress/--no-progress", default=None, help="progress bar (default: on a terminal only)")
@click.option("--dashboard", is_flag=True, help="serve a live dashboard of the run in the browser; it stays up "
              "after the run, with a link to the report, until Ctrl-C")
@click.option("--host", help="the dashboard's address (default 127.0.0.1)")
@click.option("--port", type=click.IntRange(0, 65535), help="the dashboard's port (default 8765; 0: any free port)")
@click.option("--pace", type=click.FloatRange(0, 60), default=0.0, metavar="SECONDS",
              help="make each step last at least SECONDS of wall time, to watch a fast run on the dashboard; "
              "changes nothing on chain")
def run_command(scenario: str, seed: int | None, steps: int | None, backend: str, rpc_url: str | None,
                out_dir: Path | None, force: bool, defences: tuple[str, ...], progress: bool | None,
                dashboard: bool, host: str | None, port: int | None, pace: float, side: str | None,
                **connect_options: Any) -> None:
    """Run SCENARIO (a shipped name or a TOML file) and write its run directory and report."""
    from sim.engine import run_scenario
    from sim.rundir import RunDirectoryError, check_available

    if not dashboard and (host is not None or port is not None):
        _fail(f"perpsim: --{'host' if host is not None else 'port'} is for the dashboard: add --dashboard")
    loaded = _load(scenario, defences, seed=seed, steps=steps, side=side)
    if out_dir is not None:
        try:
            check_available(out_dir, force)
        except RunDirectoryError as exc:
            _fail(f"perpsim: --out {exc}")
    if connect_options.get("attach") is not None:
        if click.get_current_context().get_parameter_source("backend") != ParameterSource.DEFAULT and backend != "rpc":
            _fail(f"perpsim: --attach runs on a node: it needs --backend rpc, not {backend}")
        backend = "rpc"
    elif backend == "rpc" and not rpc_url:
        _fail("perpsim: --backend rpc needs --rpc-url, e.g. --rpc-url http://127.0.0.1:8545")
    elif rpc_url and backend != "rpc":
        _fail(f"perpsim: --rpc-url is for --backend rpc; the {backend} backend runs in process")
    chain, protocol_factory = _connect(backend, rpc_url, loaded, connect_options.get("attach"))
    rpc_url = rpc_url or getattr(chain, "url", None)
    if out_dir is None:
        from sim.engine import default_run_dir

        out_dir = default_run_dir(loaded, tag=f"defences-{side}" if side else "")
    click.echo(f"perpsim: {loaded.name}, seed {loaded.seed}, {loaded.steps} steps of {loaded.step_seconds} s "
               f"on {backend}; writing {out_dir}")
    board = _open_dashboard(out_dir, host, port, background=True) if dashboard else None
    try:
        result = run_scenario(loaded, backend=backend, rpc_url=rpc_url, out_dir=out_dir, progress=progress,
                              chain=chain, protocol_factory=protocol_factory, force=force, pace=pace)
    except KeyboardInterrupt:
        _fail(f"perpsim: {_stopped(out_dir)}", EXIT_INTERRUPTED)
        return
    except RunDirectoryError as exc:
        _fail(f"perpsim: --out {exc}")
        return
    except Exception:  # noqa: BLE001 - the run directory says "partial" and holds the error
        _fail(f"perpsim: {_stopped(out_dir)}", 1)
        return
    stats = result.stats
    click.echo(f"done in {stats.wall_seconds:.1f} s: {stats.agent_transactions:,} agent transactions "
               f"({stats.agent_reverts:,} reverted), {stats.transactions_per_second:,.0f} tx/s")
    for key, label, colour in HEADLINES:
        if key in result.summary:
            value = result.summary[key]
            fg = colour(value) if colour else None
            click.echo(f"  {label:<32} " + (click.style(_fmt(value), fg=fg) if fg else _fmt(value)))
    click.echo(f"run directory: {result.run_dir}")
    click.echo(f"report: {result.report}")
    if board is not None:
        click.echo(f"dashboard: {board.url} stays up with the final report; Ctrl-C to stop")
        _serve_until_interrupted(board)


def _open_dashboard(run_dir: Path, host: str | None, port: int | None, background: bool) -> Any:
    """A `Dashboard` of `run_dir` (sim/dashboard), started in a thread when `background`;
    exit 2 when it cannot be (its extra missing, the port taken)."""
    from sim.dashboard import available

    missing = available()
    if missing:
        _fail(f"perpsim: {missing}")
    from sim.dashboard.server import DEFAULT_HOST, DEFAULT_PORT, Dashboard, DashboardError

    try:
        board = Dashboard(run_dir, host or DEFAULT_HOST, DEFAULT_PORT if port is None else port)
    except DashboardError as exc:
        _fail(f"perpsim: {exc}")
        raise  # unreachable: _fail exits
    if background:
        board.start()
        atexit.register(board.stop)  # however the run ends, the server stops with the process
        click.echo(f"dashboard: {board.url}")
    return board


def _serve_until_interrupted(board: Any) -> None:
    try:
        board.wait()
    except KeyboardInterrupt:
        pass
    board.stop()
    click.echo("dashboard stopped")


@main.command("dashboard")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--host", help="address to serve on (default 127.0.0.1)")
@click.option("--port", type=click.IntRange(0, 65535), help="port (default 8765; 0: any free port)")
def dashboard_command(run_dir: Path, host: str | None, port: int | None) -> None:
    """Serve the live dashboard of RUN_DIR, finished or still being written, until Ctrl-C."""
    board = _open_dashboard(run_dir, host, port, background=False)
    click.echo(f"dashboard: {board.url} (Ctrl-C to stop)")
    try:
        board.serve_forever()
    except KeyboardInterrupt:
        pass
    click.echo("dashboard stopped")


def _stopped(run_dir: Path) -> str:
    """What a run that stopped early left: its error, what it recorded, what it lacks, and
    how to draw its report."""
    from sim.rundir import REPORT_FILE, read_json

    status = read_json(run_dir / "status.json")
    last = status.get("last_step")
    recorded = "nothing was recorded" if last is None else f"steps 0 to {last} were recorded"
    lines = [f"{status.get('error') or 'the run stopped'}",
             f"the run stopped ({recorded}; status {status.get('status', 'partial')}); its directory is {run_dir}"]
    missing = status.get("missing") or []
    if missing:
        lines.append(f"missing: {', '.join(missing)}")
    if REPORT_FILE in missing and last is not None:
        lines.append(f"draw its report with: perpsim report {run_dir}")
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"  # e.g. no keeper delay when nothing was liquidated
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


@main.command("sweep")
@click.argument("scenario")
@click.option("--seeds", default="10", show_default=True, help="N (seeds 0 to N-1) or A..B (A to B, both included)")
@click.option("--grid", multiple=True, metavar="KEY=V1,V2,...",
              help="a scenario field and its values, e.g. 'markets.ETH.imf=0.05,0.1' (repeatable: the product)")
@click.option("--steps", type=click.IntRange(1), help="override the number of steps")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="sweep directory (default: sweeps/<scenario>-<timestamp>)")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--workers", type=click.IntRange(1), help="worker processes (default: one per core; ray: the cluster's CPUs)")
@click.option("--address", help="with --executor ray: join the Ray cluster at this address instead of starting one")
@click.option("--reports/--no-reports", default=False, help="keep each run's directory and report under OUT/runs/")
@click.option("--resume", is_flag=True, help="continue the sweep in --out, skipping the runs it has done")
@click.option("--progress/--no-progress", default=None, help="progress bar (default: on a terminal only)")
def sweep_command(scenario: str, **options: Any) -> None:
    """Run SCENARIO over seeds and a parameter grid; write runs.parquet, risk.parquet and sweep.html."""
    from sim.sweep import SweepInputError, SweepInterrupted
    from sim.sweep.command import main as sweep

    try:
        sweep(scenario, **options)
    except SweepInputError as exc:
        _fail(f"perpsim sweep: {exc}")
    except SweepInterrupted as exc:
        _fail(f"perpsim sweep: interrupted after {exc.result.ran} run(s); runs.parquet in {exc.result.out_dir} "
              "holds every finished run: add --resume to continue", EXIT_INTERRUPTED)


@main.command("attack")
@click.argument("scenario")
@click.option("--capital", type=float, required=True, metavar="USD", help="what the attacker starts with")
@click.option("--horizon", type=int, required=True, metavar="BLOCKS", help="blocks of moves before the unwind")
@click.option("--trials", type=int, default=200, show_default=True, help="plans to try")
@click.option("--seed", type=int, default=0, show_default=True, help="seeds the search")
@click.option("--sampler", type=click.Choice(["cem", "tpe"]), default="cem", show_default=True,
              help="the search: the cross-entropy method, or Optuna's TPE (the search extra)")
@click.option("--at-step", "at_steps", type=int, multiple=True, metavar="K",
              help="a step to attack at (repeatable; default: a third of the run)")
@click.option("--defence", "defences", multiple=True, metavar="NAME=VALUE", help="set a [defences] flag (repeatable)")
@click.option("--moves", "kinds", metavar="KIND,...", help="the moves the search may use (default: all)")
@click.option("--max-moves", type=int, help="moves in a plan, at most (default 4)")
@click.option("--subaccounts", type=int, help="the attacker's subaccounts the moves may use, 1 to 3 (default 3)")
@click.option("--min-profit", type=float, metavar="USD", help="a plan counts as profitable above this (default 1,000)")
@click.option("--max-leverage", type=float, help="the highest leverage an open tries (default 10)")
@click.option("--bribe-cost", type=float, metavar="USD", help="a bribed reporter's cost per block (default 10,000)")
@click.option("--capital-cost", type=float, metavar="RATE", help="the capital's yearly cost (default 0.05)")
@click.option("--backend", type=click.Choice(["revm", "pyevm"]), default="revm", show_default=True)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), help="output directory, new or empty "
              "(default: attacks/<scenario>-<timestamp>)")
@click.option("--force", is_flag=True, help="let --out write over a directory that holds files")
@click.option("--progress/--no-progress", default=None, help="progress bar (default: on a terminal only)")
def attack_command(scenario: str, defences: tuple[str, ...], kinds: str | None, **options: Any) -> None:
    """Search SCENARIO for the most profitable attack; write attack.json, trials.parquet,
    replay.toml and attack.html."""
    from sim.attack import AttackInputError, run_attack

    loaded = _load(scenario, defences)
    if kinds is not None:
        options["kinds"] = tuple(k.strip() for k in kinds.split(",") if k.strip())
    options["at_steps"] = options["at_steps"] or None
    try:
        run = run_attack(loaded, **options)
    except AttackInputError as exc:
        _fail(f"perpsim attack: invalid option ({len(exc.problems)} problem{'s' if len(exc.problems) != 1 else ''}):"
              f"\n{exc}")
        return
    best = run.result.best
    click.echo(f"{len(run.result.trials)} trials in {run.result.seconds:.1f} s "
               f"({run.result.trials_per_second:.1f}/s); first profit at trial {run.result.first_profit or '-'}")
    click.echo(f"best: ${best.profit:,.2f} after ${best.costs:,.2f} declared costs, from step {best.at_step}:")
    for move in best.moves:
        click.echo(f"  block {move.block}: {move.words()}")
    for name, path in run.paths.items():
        click.echo(f"{name}: {path}")
    if run.result.interrupted:
        _fail("perpsim attack: interrupted (Ctrl-C); the outputs hold the trials run so far, the best unshrunk",
              EXIT_INTERRUPTED)


@main.command("list")
@click.option("--top", "chosen", flag_value="top", multiple=True, help="the top-level fields of a scenario file")
@click.option("--markets", "chosen", flag_value="markets", multiple=True, help="every [[markets]] field")
@click.option("--prices", "chosen", flag_value="prices", multiple=True, help="every price process and its fields")
@click.option("--oracle", "chosen", flag_value="oracle", multiple=True, help="every [oracle] field")
@click.option("--agents", "chosen", flag_value="agents", multiple=True, help="every agent kind and its Config fields")
@click.option("--shocks", "chosen", flag_value="shocks", multiple=True, help="every shock kind and its fields")
@click.option("--defences", "chosen", flag_value="defences", multiple=True, help="every [defences] flag")
def list_command(chosen: tuple[str, ...]) -> None:
    """The shipped scenarios and the agent zoo; with flags, the fields of a scenario file's
    tables (type, default, bounds, description), as docs/scenario-reference.md has them."""
    if chosen:
        from sim.reference import SECTIONS, section_text

        click.echo("\n\n".join(section_text(SECTIONS[name]()) for name in dict.fromkeys(chosen)))
        return
    from sim.agents import describe

    click.echo("Scenarios (perpsim run NAME):")
    shipped = shipped_scenarios()
    width = max(map(len, shipped), default=0) + 1
    for name, path in shipped.items():
        try:
            description = load_scenario(path).description
        except ScenarioError as exc:
            description = f"(invalid: {exc.problems[0].line(path.name)})"
        click.echo(f"  {name:<{width}} {description}")
    click.echo("\nAgents ([[agents]] kind; perpsim list --agents for their fields):")
    click.echo(describe(fields=False))
    click.echo("\nThe fields of every table: perpsim list --top --markets --prices --oracle --agents --shocks --defences, "
               "or docs/scenario-reference.md")


@main.command("validate")
@click.argument("files", nargs=-1, required=True)
def validate_command(files: tuple[str, ...]) -> None:
    """Check scenario files without running them; exit 2 if any is invalid."""
    bad = 0
    for name in files:
        try:
            scenario = load_scenario(name)
            if scenario.defended is not None:
                load_scenario(name, side="on")  # its defended side: [defended] and its own agents
        except ScenarioError as exc:
            bad += 1
            click.echo(str(exc), err=True)
            continue
        agents = sum(a.count for a in scenario.agents)
        click.echo(f"{name}: ok ({scenario.name}: {len(scenario.markets)} market(s), {agents} agents, "
                   f"{len(scenario.shocks)} shock(s), {scenario.steps} steps)")
    if bad:
        sys.exit(EXIT_BAD_INPUT)


@main.command("report")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
def report_command(run_dir: Path) -> None:
    """Draw the report (report.html and its charts) of RUN_DIR, finished or not: a run
    interrupted, crashed or stopped while its report was drawn. A run whose only missing part
    was its report becomes complete."""
    from sim.rundir import RunDirectoryError, redraw_report

    try:
        path, status = redraw_report(run_dir)
    except RunDirectoryError as exc:
        _fail(f"perpsim: {exc}")
        return
    click.echo(f"report: {path}")
    state = status.get("status", "unknown") if status else "unknown (no status.json)"
    if state == "running":
        state = "running (the run is live, or was killed without a word)"
    missing = status.get("missing") if status else None
    click.echo(f"status: {state}" + (f"; missing: {', '.join(missing)}" if missing else ""))


@main.command("compare")
@click.argument("run_a", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("run_b", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path),
              help="the comparison page (default: compare-<A>-vs-<B>.html beside RUN_B)")
def compare_command(run_a: Path, run_b: Path, out_file: Path | None) -> None:
    """Two runs side by side: their summaries printed with the differences, and one HTML page
    (bad debt, insurance drawdown, deficit, attacker profit, LP PnL, liquidations and their
    delay, and both runs' LP share price on one chart)."""
    from sim.report import compare_runs
    from sim.report.compare_page import write_comparison

    try:
        text = compare_runs(run_a, run_b)
        out_file = out_file or run_b.parent / f"compare-{run_a.name}-vs-{run_b.name}.html"
        page = write_comparison(run_a, run_b, out_file)
    except FileNotFoundError as exc:
        _fail(f"perpsim: {exc}")
        return
    click.echo(text)
    click.echo(f"comparison page: {page}")


if __name__ == "__main__":
    main()
