"""The deployment file: where a deployed protocol lives, so a simulation can attach to it.

scripts/deploy.py (`ape run deploy`, and so `make devnet`) writes one after deploying; `perpsim
run --attach FILE` reads it. It holds the chain id, the contracts' addresses and ABIs, the
accounts that play the deployment's roles, and the protocol config it was deployed with.

The config comes from a TOML of market parameters in the scenario schema (`[[markets]]`,
`[oracle]`, top-level `reserve_factor`, `insurance_fund`, `vault_liquidity`, `reporters`; a
market's `price` table, the simulator's, is ignored), or from a whole scenario file, which
deploys exactly what a run of that scenario deploys (`load_protocol_config`).
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sim.chain import Chain, ChainError, compile_project
from sim.protocol import CONTRACT_NAMES, DEPLOYER, CallStep, Protocol, ProtocolConfig, deployment_plan, reporter_role

DEPLOYMENT_FORMAT = 1
# What a scenario's [[markets]] table may hold beyond MarketConfig: the simulator's price process.
SIMULATOR_MARKET_KEYS = ("price",)
PROTOCOL_KEYS = tuple(k for k in ProtocolConfig.model_fields if k not in ("markets", "oracle"))
# Keys that make a TOML file a whole scenario rather than market parameters alone.
SCENARIO_ONLY_KEYS = ("steps", "agents", "shocks", "defences", "seed", "step_seconds")
DESCRIPTIVE_KEYS = ("name", "description")  # allowed, and ignored, in a market-parameters file


class DeploymentError(Exception):
    """A deployment file or config that cannot be used; the message says what and where."""


class DeployedContract(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    address: str
    abi: list[dict[str, Any]]


class Deployment(BaseModel):
    """A protocol deployed on one chain."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: int = DEPLOYMENT_FORMAT
    chain_id: int
    network: str = Field(description="ape network choice it was deployed with, e.g. ethereum:local:foundry")
    rpc_url: str | None = Field(None, description="the node's URL, when it was deployed through one")
    start_block: int = Field(description="block of the first deployment transaction")
    end_block: int = Field(description="block of the last deployment transaction")
    roles: dict[str, str] = Field(description="role (deployer, reporter-0, seed-lp, ...) -> address")
    contracts: dict[str, DeployedContract]
    config: ProtocolConfig
    compiler: str = Field(description="compiler and version the contracts were built with")

    @property
    def deployer(self) -> str:
        return self.roles[DEPLOYER]

    def addresses(self) -> dict[str, str]:
        return {name: c.address for name, c in self.contracts.items()}

    def reporters(self) -> list[str]:
        return [self.roles[reporter_role(i)] for i in range(self.config.reporters)]

    def write(self, path: str | Path) -> Path:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(self.model_dump_json(indent=2) + "\n")
        return target

    @classmethod
    def load(cls, path: str | Path) -> Deployment:
        source = Path(path)
        if not source.is_file():
            raise DeploymentError(f"no deployment file at {source}; `make devnet` or `ape run deploy` writes one")
        try:
            data = json.loads(source.read_text())
        except json.JSONDecodeError as exc:
            raise DeploymentError(f"{source} is not JSON: {exc}") from exc
        if not isinstance(data, dict) or data.get("format") != DEPLOYMENT_FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise DeploymentError(f"{source}: deployment format {found!r}, expected {DEPLOYMENT_FORMAT}")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise DeploymentError(f"{source} is not a valid deployment file:\n{exc}") from exc

    def verify(self, chain: Chain) -> None:
        """Check that `chain` is the chain this was deployed on and that the code there is what
        contracts/ compiles to now; raise DeploymentError saying what is wrong."""
        artifacts = compile_project()
        node_chain_id = chain_id_of(chain)
        if node_chain_id is not None and node_chain_id != self.chain_id:
            raise DeploymentError(f"the deployment is on chain id {self.chain_id}, the node is on {node_chain_id}")
        for name in CONTRACT_NAMES:
            if name not in self.contracts:
                raise DeploymentError(f"the deployment has no {name}; it has {sorted(self.contracts)}")
            code = chain.get_code(self.contracts[name].address)
            if not code:
                raise DeploymentError(
                    f"no code at {name}'s address {self.contracts[name].address}: the node is not the one "
                    "this deployment was made on (was the devnet restarted? `make devnet` deploys again)"
                )
            # Vyper appends immutables after the runtime code, so compare the prefix.
            if not code.startswith(artifacts[name].runtime_bytecode):
                raise DeploymentError(
                    f"the code at {name} ({self.contracts[name].address}) is not what contracts/{name}.vy "
                    "compiles to now: the contracts changed since this deployment; deploy again"
                )

    def attach(self, chain: Chain) -> Protocol:
        """The Protocol facade over this deployment on `chain` (after `verify`), its reporters
        the deployment's."""
        self.verify(chain)
        protocol = Protocol.attach(chain, self.config, self.addresses(), self.deployer)
        protocol.reporters = self.reporters()
        return protocol


def chain_id_of(chain: Chain) -> int | None:
    """The node's chain id, for chains that run on a node (None for in-process ones)."""
    web3 = getattr(chain, "web3", None)
    if web3 is None:
        return None
    try:
        return int(web3.eth.chain_id)
    except Exception as exc:  # web3 raises transport errors of several types
        raise ChainError(f"could not read the chain id from {getattr(chain, 'url', 'the node')}: {exc}") from exc


def load_protocol_config(source: str | Path) -> ProtocolConfig:
    """The ProtocolConfig that a TOML file (or a shipped scenario, by name) deploys.

    A whole scenario (it has `steps` or `agents`) is validated as one and gives exactly what a
    run of it deploys (`Scenario.protocol_config()`: first prices from its price processes,
    defences applied, one reporter per oracle_reporter agent). A file of market parameters
    alone is read as in the module doc."""
    from sim.scenario import ScenarioError, load_scenario, resolve_scenario_path

    try:
        path = resolve_scenario_path(source)
        data = tomllib.loads(path.read_text())
    except ScenarioError as exc:  # neither a file nor a shipped scenario's name
        raise DeploymentError(str(exc)) from None
    except tomllib.TOMLDecodeError as exc:
        raise DeploymentError(f"{source} is not valid TOML: {exc}") from exc
    if any(key in data for key in SCENARIO_ONLY_KEYS):
        try:
            return load_scenario(path).protocol_config()
        except ScenarioError as exc:
            raise DeploymentError(f"{path} is a scenario that does not validate:\n{exc}") from None
    return protocol_config_from_dict(data, str(path))


def protocol_config_from_dict(data: dict[str, Any], where: str = "config") -> ProtocolConfig:
    """A market-parameters table: `markets`, `oracle` and the top-level protocol fields."""
    unknown = sorted(set(data) - set(PROTOCOL_KEYS) - {"markets", "oracle", *DESCRIPTIVE_KEYS})
    if unknown:
        raise DeploymentError(
            f"{where}: unknown top-level keys {unknown}; expected markets, oracle, {', '.join(PROTOCOL_KEYS)}"
        )
    fields: dict[str, Any] = {k: data[k] for k in PROTOCOL_KEYS if k in data}
    if "oracle" in data:
        fields["oracle"] = data["oracle"]
    if "markets" in data:
        markets = data["markets"]
        if not isinstance(markets, list) or not all(isinstance(m, dict) for m in markets):
            raise DeploymentError(f"{where}: `markets` must be an array of tables ([[markets]]), got {markets!r}")
        fields["markets"] = [{k: v for k, v in m.items() if k not in SIMULATOR_MARKET_KEYS} for m in markets]
    try:
        return ProtocolConfig(**fields)
    except ValidationError as exc:
        raise DeploymentError(f"{where}: invalid protocol parameters:\n{exc}") from exc


def config_differences(expected: ProtocolConfig, found: ProtocolConfig) -> list[str]:
    """Where two configs differ, one `path: expected vs found` line each."""
    lines: list[str] = []

    def walk(path: str, a: Any, b: Any) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b), key=str):
                walk(f"{path}.{key}" if path else str(key), a.get(key), b.get(key))
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            for i, (x, y) in enumerate(zip(a, b)):
                walk(f"{path}[{i}]", x, y)
        elif a != b:
            lines.append(f"{path}: {a!r} vs {b!r}")

    walk("", expected.model_dump(mode="json"), found.model_dump(mode="json"))
    return lines


def describe_node(chain: Chain) -> dict[str, Any] | None:
    """Which node `chain` runs on, for a run's summary: URL, chain id, client, current block
    (the node's own block number, not the simulator's logical one). None for in-process chains."""
    web3 = getattr(chain, "web3", None)
    if web3 is None:
        return None
    try:
        return {
            "url": getattr(chain, "url", None),
            "chain_id": int(web3.eth.chain_id),
            "client": str(web3.client_version),
            "block": int(web3.eth.block_number),
        }
    except Exception as exc:  # web3 raises transport errors of several types
        raise ChainError(f"could not read the node's identity from {getattr(chain, 'url', 'the node')}: {exc}") from exc


def transactions_since_deployment(path: str | Path, chain: Chain) -> int:
    """How many transactions the deployment's first reporter has sent since it was deployed:
    more than 0 once a run has used the deployment (every run's reporters report each step),
    so a new run continues from the state that run left."""
    deployment = Deployment.load(path)
    reporter = deployment.roles.get(reporter_role(0))
    if reporter is None:
        return 0
    deployed = sum(1 for step in deployment_plan(deployment.config)
                   if isinstance(step, CallStep) and step.sender == reporter_role(0))
    return max(chain.get_nonce(reporter) - deployed, 0)


def connect_to_deployment(
    *, attach: str | Path | None = None, rpc_url: str | None = None, scenario: Any = None, **options: Any
) -> tuple[Chain | None, Callable[[Chain, ProtocolConfig], Protocol] | None]:
    """`perpsim run --attach FILE`: the node's chain and a factory giving the attached Protocol,
    after checking that the node holds the deployment and that `scenario` deploys the same
    config. Without `attach`, (None, None): the run makes its chain and deploys."""
    if attach is None:
        return None, None
    from sim.chain import make_chain

    deployment = Deployment.load(attach)
    if scenario is not None and (differences := config_differences(scenario.protocol_config(), deployment.config)):
        source = scenario.source or scenario.name
        raise DeploymentError(
            f"scenario {scenario.name} deploys another protocol config than {attach} holds (scenario vs deployment):\n  "
            + "\n  ".join(differences)
            + f"\ndeploy the scenario's with `CONFIG={source} make devnet`, or `ape run deploy --config {source}`"
        )
    url = rpc_url or deployment.rpc_url
    if not url:
        raise DeploymentError(f"{attach} names no node URL (it was deployed on {deployment.network}): pass --rpc-url")
    chain = make_chain("rpc", rpc_url=url)
    deployment.verify(chain)
    return chain, lambda chain, config: deployment.attach(chain)
