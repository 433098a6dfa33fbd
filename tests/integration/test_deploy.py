"""The ape deployment path (scripts/deploy.py) and the devnet (sim/devnet.py) on a live anvil.

`ape run deploy` must deploy what `Protocol.deploy` deploys, wired the same way, and write a
deployment file that the simulator can attach to and trade on.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import pytest

from sim.chain import Chain, address_from_label, compile_project, make_chain
from sim.deployment import Deployment, DeploymentError, load_protocol_config
from sim.devnet import CHAIN_ID, DEVNET_DIR_ENV, REPO_ROOT, free_port, is_our_anvil
from sim.protocol import CONTRACT_NAMES, DEPLOYER, SEED_LP, Protocol, reporter_role

pytestmark = pytest.mark.integration

# Ape's first test account for the fixed mnemonic: the deployer on a local network.
APE_TEST_ACCOUNT_0 = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"

# Market parameters in the scenario schema; a market's price table (the simulator's) is ignored.
MARKETS_TOML = """
name = "deploy-test"
reserve_factor = 0.25
insurance_fund = 5000.0
vault_liquidity = 1000000.0
reporters = 2

[oracle]
max_age = 300
min_reporters = 2
max_deviation = 0.2

[[markets]]
name = "ETH"
initial_price = 2000.0
skew_scale = 10000.0
max_oi = 500.0

[markets.price]
model = "gbm"
volatility = 0.8

[[markets]]
name = "BTC"
initial_price = 30000.0
max_oi = 100.0
funding_model = "velocity"
mark_mode = "median"
liquidation_fee = 0.02
"""


@pytest.fixture(scope="module")
def markets_toml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config") / "markets.toml"
    path.write_text(MARKETS_TOML)
    return path


@pytest.fixture(scope="module")
def deployment_path(devnet_url: str, ape_deploy: Callable[..., Any], markets_toml: Path,
                    tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("deployment") / "deployment.json"
    done = ape_deploy(devnet_url, "--config", str(markets_toml), "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    return out


@pytest.fixture(scope="module")
def deployment(deployment_path: Path) -> Deployment:
    return Deployment.load(deployment_path)


@pytest.fixture
def node(devnet_url: str) -> Chain:
    """The devnet through the simulator's rpc chain; put back to its state after the test."""
    chain = make_chain("rpc", rpc_url=devnet_url)
    start = chain.snapshot()
    yield chain
    chain.revert(start)
    chain.close()


# -- the deployment file ----------------------------------------------------------------


def test_deployment_file_describes_the_deployment(deployment: Deployment, devnet_url: str, markets_toml: Path) -> None:
    assert deployment.chain_id == CHAIN_ID
    assert deployment.network == "ethereum:local:foundry"
    assert deployment.rpc_url == devnet_url
    assert tuple(deployment.contracts) == CONTRACT_NAMES
    assert deployment.config == load_protocol_config(markets_toml)
    assert deployment.roles == {
        DEPLOYER: APE_TEST_ACCOUNT_0,
        reporter_role(0): address_from_label(reporter_role(0)),
        reporter_role(1): address_from_label(reporter_role(1)),
        SEED_LP: address_from_label(SEED_LP),
    }
    assert 1 <= deployment.start_block < deployment.end_block
    assert deployment.compiler == "vyper 0.4.3"
    artifacts = compile_project()
    for name, contract in deployment.contracts.items():
        assert contract.abi == artifacts[name].abi, name


def test_deployed_code_is_what_the_simulator_compiles(deployment: Deployment, node: Chain) -> None:
    """ape-vyper and sim/chain/compiler.py run the same vyper with the same settings."""
    artifacts = compile_project()
    for name, contract in deployment.contracts.items():
        assert node.get_code(contract.address).startswith(artifacts[name].runtime_bytecode), name


def _wiring(protocol: Protocol, roles: dict[str, str]) -> dict[str, Any]:
    """Everything the deployment set, read from views, with addresses replaced by their names."""
    names = {address: name for name, address in protocol.addresses().items()}
    names |= {address: role for role, address in roles.items()}

    def named(value: Any) -> Any:
        if isinstance(value, (tuple, list)):
            return tuple(named(v) for v in value)
        return names.get(value, value) if isinstance(value, str) else value

    ex, oracle, vault, liq = protocol.exchange, protocol.oracle, protocol.vault, protocol.liquidator
    views: dict[str, Any] = {
        "exchange": [ex.call(f) for f in ("COLLATERAL", "PRECISION", "VAULT", "INSURANCE_FUND", "owner", "oracle",
                                          "trigger_orders", "liquidator", "market_count")],
        "vault": [vault.call(f) for f in ("TOKEN", "PRECISION", "owner", "exchange", "reserve_factor", "total_shares")],
        "seed_lp_shares": vault.call("shares", roles[SEED_LP]),
        "liquidator": [liq.call("EXCHANGE"), liq.call("owner")],
        "oracle_owner": oracle.call("owner"),
        "reporters": [oracle.call("reporters", i) for i in range(protocol.config.reporters)],
        "insurance_balance": protocol.insurance_balance(),
        "vault_nav": protocol.vault_nav(),
    }
    for market in range(len(protocol.config.markets)):
        views[f"market-{market}"] = [ex.call("markets", market), liq.call("params", market),
                                     oracle.call("feeds", market), protocol.index_price(market)]
    return {key: named(value) for key, value in views.items()}


def test_wiring_matches_protocol_deploy(deployment: Deployment, node: Chain) -> None:
    """The ape script and `Protocol.deploy` run one deployment plan: same roles, parameters, prices."""
    on_devnet = _wiring(deployment.attach(node), deployment.roles)
    revm = make_chain("revm")
    simulated = Protocol.deploy(revm, deployment.config)
    roles = {DEPLOYER: simulated.deployer, SEED_LP: address_from_label(SEED_LP)}
    roles |= {reporter_role(i): r for i, r in enumerate(simulated.reporters)}
    assert on_devnet == _wiring(simulated, roles)
    assert on_devnet["exchange"][2:8] == ("Vault", "InsuranceFund", "deployer", "Oracle", "TriggerOrders", "Liquidator")


def test_simulator_trades_on_the_deployment(deployment: Deployment, node: Chain) -> None:
    protocol = deployment.attach(node)
    assert protocol.index_price("ETH") == (2000.0, True)
    assert protocol.index_price("BTC") == (30000.0, True)
    assert protocol.vault_nav() == pytest.approx(1_000_000.0)
    node.mine(12)
    protocol.report_all("ETH", 2010.0)
    protocol.report_all("BTC", 30100.0)
    trader = node.new_account("integration-trader")
    protocol.mint(trader, 20_000.0)
    protocol.deposit(trader, 20_000.0)
    assert protocol.collateral(trader) == pytest.approx(20_000.0)
    cursor = node.events_since(0)[1]
    fill = protocol.trade(trader, "ETH", 2.5)
    protocol.trade(trader, "BTC", -0.5)
    assert fill == pytest.approx(2010.0, rel=1e-3)
    assert protocol.position(trader, "ETH").size == 2.5
    assert protocol.position(trader, "BTC").size == -0.5
    assert protocol.open_interest("ETH") == (2.5, 0.0)
    trades = [e for e in node.events_since(cursor)[0] if e.name == "Trade"]
    assert [(e.args["market"], e.args["new_size"]) for e in trades] == [(0, 2_500_000_000_000_000_000),
                                                                         (1, -500_000_000_000_000_000)]
    assert protocol.health(trader).equity > 19_900.0


def test_attach_refuses_a_node_without_the_deployment(deployment: Deployment) -> None:
    chain = make_chain("revm")
    with pytest.raises(DeploymentError, match="no code at MockUSDC"):
        deployment.attach(chain)


# -- refusals ---------------------------------------------------------------------------


def test_bad_config_is_rejected_naming_the_field(devnet_url: str, ape_deploy: Callable[..., Any],
                                                 tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[markets]]\nname = "ETH"\nimf = 0.05\nmmf = 0.0625\n')
    done = ape_deploy(devnet_url, "--config", str(bad), "--out", str(tmp_path / "never.json"))
    assert done.returncode != 0
    assert "mmf (0.0625) must be below imf (0.05)" in done.stdout + done.stderr
    assert not (tmp_path / "never.json").exists()


def _deploy_script() -> Any:
    spec = importlib.util.spec_from_file_location("perpsim_deploy_script", REPO_ROOT / "scripts" / "deploy.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.mark.parametrize("chain_id", [1, 10, 56, 137, 8453, 42161])
def test_mainnet_chain_ids_are_refused(chain_id: int) -> None:
    script = _deploy_script()
    with pytest.raises(click.UsageError, match="--allow-mainnet"):
        script.refuse_mainnet(chain_id, "custom", allow_mainnet=False)
    script.refuse_mainnet(chain_id, "custom", allow_mainnet=True)
    script.refuse_mainnet(CHAIN_ID, "local", allow_mainnet=False)
    script.refuse_mainnet(11155111, "sepolia", allow_mainnet=False)


# -- make devnet / make devnet-stop --------------------------------------------------------


def _devnet(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sim.devnet", command], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=180)


def test_devnet_start_deploys_and_stop_stops_only_its_anvil(tmp_path: Path, markets_toml: Path) -> None:
    from tests.utils.anvil import require_anvil

    require_anvil()
    port = free_port()
    env = dict(os.environ, PORT=str(port), CONFIG=str(markets_toml), **{DEVNET_DIR_ENV: str(tmp_path)})
    started = _devnet("start", env)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        pid = int((tmp_path / "anvil.pid").read_text())
        assert is_our_anvil(pid)
        assert (tmp_path / "anvil.log").is_file()
        deployment = Deployment.load(tmp_path / "deployment.json")
        assert deployment.rpc_url == f"http://127.0.0.1:{port}"
        for name, contract in deployment.contracts.items():
            assert f"{name:<14} {contract.address}" in started.stdout
        protocol = deployment.attach(make_chain("rpc", rpc_url=deployment.rpc_url))
        assert protocol.index_price("BTC") == (30000.0, True)

        again = _devnet("start", env)
        assert again.returncode != 0 and "already running" in again.stderr
    finally:
        stopped = _devnet("stop", env)
    assert stopped.returncode == 0 and f"devnet stopped (pid {pid})" in stopped.stdout
    assert not is_our_anvil(pid)
    assert not (tmp_path / "anvil.pid").exists()
    twice = _devnet("stop", env)
    assert twice.returncode == 0 and "no devnet running" in twice.stdout


def test_devnet_with_a_block_time_deploys(tmp_path: Path) -> None:
    """`make devnet BLOCK_TIME=2` (issue 14, item 5): under interval mining ape returns before
    each transaction is mined; the deployment waits for every receipt (here a block a second,
    and a one-market config, to keep it short)."""
    from tests.utils.anvil import require_anvil

    require_anvil()
    config = tmp_path / "one-market.toml"
    config.write_text('reporters = 1\n\n[[markets]]\nname = "ETH"\n')
    env = dict(os.environ, PORT=str(free_port()), BLOCK_TIME="1", CONFIG=str(config), **{DEVNET_DIR_ENV: str(tmp_path)})
    started = _devnet("start", env)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert "a block every 1 s" in started.stdout
        deployment = Deployment.load(tmp_path / "deployment.json")
        assert deployment.end_block - deployment.start_block >= 10  # one block per transaction: each waited for its own
        protocol = deployment.attach(make_chain("rpc", rpc_url=deployment.rpc_url))  # verifies every contract's code
        assert protocol.index_price("ETH") == (2000.0, True)
    finally:
        _devnet("stop", env)


def test_ape_works_from_the_venv_alone(tmp_path: Path) -> None:
    """`.venv/bin/ape compile --force` without the venv on PATH (issue 14, item 8): ape-vyper
    finds the pip-installed vyper, and no IncompleteFieldDefinitionWarning is printed. `make
    setup` installs scripts/_venv_hook.pth, which makes both so. A one-contract project keeps it
    quick."""
    (tmp_path / "contracts").mkdir()
    (tmp_path / "contracts" / "One.vy").write_text(
        "# pragma version ~=0.4.3\n\n@external\n@pure\ndef one() -> uint256:\n    return 1\n")
    (tmp_path / "ape-config.yaml").write_text("name: one\ncontracts_folder: contracts\n")
    env = {"HOME": os.environ.get("HOME", str(tmp_path)), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([str(Path(sys.executable).parent / "ape"), "compile", "--force"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=180)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "'local project' compiled" in output
    assert "VyperNotInstalled" not in output and "IncompleteFieldDefinitionWarning" not in output
