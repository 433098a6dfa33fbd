"""Deploy the whole perpsim protocol and its markets to an ape network; write a deployment file.

    ape run deploy --network ethereum:local:foundry --config markets.toml
    ape run deploy --network ethereum:sepolia:node --account my-key --config markets.toml

`--config` is a TOML of market parameters in the scenario schema (`[[markets]]`, `[oracle]`,
top-level `reserve_factor`, `insurance_fund`, `vault_liquidity`, `reporters`), or a whole
scenario (a file or a shipped name such as `calm`), which deploys exactly what a run of it
deploys; without it, the defaults of sim/protocol.py's ProtocolConfig.

The transactions are sim/protocol.py's `deployment_plan`, the same ones `Protocol.deploy` sends
in a simulation, here sent through ape's contract containers. Roles: the deployer is `--account`
(on a local or fork network, ape's first test account by default, so nothing prompts). On a
network that can impersonate (anvil), reporters and the seed LP are the simulator's own accounts
(`reporter-0`, `seed-lp`, ...), so a simulation attached to the deployment drives them; on
another local network (ape's `test` provider) ape's other test accounts play them; on a live
network the deployer plays every role, and `reporters` must be 1.

Networks whose chain id is a public mainnet are refused unless `--allow-mainnet` is given: the
protocol mints its collateral token from a public faucet and is for simulation only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import click
import vyper
from ape import accounts, project
from ape.cli import ConnectedProviderCommand, account_option, network_option
from ape.exceptions import AccountsError

from sim.chain import Artifact, address_from_label, compile_project
from sim.deployment import DeployedContract, Deployment, DeploymentError, load_protocol_config
from sim.protocol import (
    CONTRACT_NAMES,
    DEPLOYER,
    DeployStep,
    ProtocolConfig,
    artifact_name,
    deployment_plan,
    plan_roles,
    resolve_args,
)

# Public mainnets (chain ids) this script refuses without --allow-mainnet.
MAINNET_CHAIN_IDS = {
    1: "Ethereum", 10: "OP Mainnet", 25: "Cronos", 56: "BNB Smart Chain", 100: "Gnosis",
    130: "Unichain", 137: "Polygon PoS", 146: "Sonic", 250: "Fantom", 324: "zkSync Era",
    1101: "Polygon zkEVM", 1284: "Moonbeam", 5000: "Mantle", 8453: "Base", 34443: "Mode",
    42161: "Arbitrum One", 42170: "Arbitrum Nova", 42220: "Celo", 43114: "Avalanche C-Chain",
    59144: "Linea", 81457: "Blast", 534352: "Scroll", 7777777: "Zora",
}
ROLE_BALANCE_WEI = 10**21  # what an impersonated role account is given on a dev network
RECEIPT_TIMEOUT_SECONDS = 120  # how long a transaction may wait for its block (interval mining)


@click.command(cls=ConnectedProviderCommand, short_help="Deploy the perpsim protocol and its markets")
@network_option()
@account_option(prompt=False)
@click.option(
    "--config", "config_source",
    help="TOML of market parameters (scenario schema), a scenario file, or a shipped scenario's name "
    "(e.g. calm); default: ProtocolConfig's defaults",
)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path),
    help="deployment file to write; default: deployments/<ecosystem>-<network>-<chain id>.json",
)
@click.option("--allow-mainnet", is_flag=True, help="deploy even where the chain id is a public mainnet")
def cli(network: Any, provider: Any, account: Any, config_source: str | None, out: Path | None, allow_mainnet: bool):
    chain_id = provider.chain_id
    refuse_mainnet(chain_id, network.name, allow_mainnet)
    try:
        config = load_protocol_config(config_source) if config_source else ProtocolConfig()
    except DeploymentError as exc:
        raise click.BadParameter(str(exc), param_hint="--config") from None
    deployer = account or default_deployer(network)
    plan = deployment_plan(config)
    signers = role_signers(plan_roles(plan), deployer, network, provider, config)
    click.echo(f"deploying perpsim to {provider.network_choice} (chain id {chain_id}) from {deployer.address}")

    artifacts = compile_project()
    containers = compiled_containers(artifacts)
    contracts: dict[str, Any] = {}
    blocks: list[int] = []
    for step in plan:
        args = resolve_args(step.args, {n: c.address for n, c in contracts.items()}, lambda r: signers[r].address)
        if isinstance(step, DeployStep):
            container = containers[step.contract]
            receipt = mined(signers[DEPLOYER].call(container(*args, sender=signers[DEPLOYER])), provider)
            if not receipt.contract_address:
                raise click.ClickException(f"{step.contract}: transaction {receipt.txn_hash} created no contract")
            contracts[step.key] = container.at(receipt.contract_address)
            click.echo(f"  {step.key:<14} {receipt.contract_address}")
            for created, getter in step.creates:  # a contract its constructor created (the ExchangeLens)
                contracts[created] = containers[created].at(getattr(contracts[step.key], getter)())
                click.echo(f"  {created:<14} {contracts[created].address}")
        else:
            receipt = mined(getattr(contracts[step.contract], step.function)(*args, sender=signers[step.sender]), provider)
        blocks.append(receipt.block_number)

    deployment = Deployment(
        chain_id=chain_id,
        network=provider.network_choice,
        rpc_url=local_node_url(provider),
        start_block=min(blocks),
        end_block=max(blocks),
        roles={role: signer.address for role, signer in signers.items()},
        contracts={
            name: DeployedContract(address=c.address, abi=artifacts[artifact_name(name)].abi)
            for name, c in contracts.items()
        },
        config=config,
        compiler=f"vyper {vyper.__version__}",
    )
    path = deployment.write(out or Path("deployments") / f"{network.ecosystem.name}-{network.name}-{chain_id}.json")
    click.echo(f"{len(plan)} transactions in blocks {deployment.start_block}..{deployment.end_block}; wrote {path}")


def mined(receipt: Any, provider: Any) -> Any:
    """`receipt` once its transaction is in a block. Under interval mining (anvil --block-time,
    `make devnet BLOCK_TIME=2`) ape returns as soon as the node accepts the transaction, with no
    block number and no contract address yet: wait for the mined receipt, so each step runs
    after the one before it and a deployment has its address."""
    if receipt.block_number is None or receipt.block_number < 0:
        receipt = provider.get_receipt(receipt.txn_hash, timeout=RECEIPT_TIMEOUT_SECONDS)
    if receipt.failed:
        raise click.ClickException(f"transaction {receipt.txn_hash} failed: {receipt.error or 'reverted'}")
    return receipt


def compiled_containers(artifacts: dict[str, Artifact]) -> dict[str, Any]:
    """ape's contract containers, checked against what sim/chain/compiler.py compiles (the same
    vyper, the same settings, so the same bytes): a stale ape build cache is rebuilt once."""

    def stale(containers: dict[str, Any]) -> list[str]:
        return [
            name for name in CONTRACT_NAMES
            if name not in containers
            or containers[name].contract_type.get_runtime_bytecode() != artifacts[name].runtime_bytecode
        ]

    containers = project.load_contracts()
    if outdated := stale(containers):
        click.echo(f"ape's build of {', '.join(outdated)} is out of date with contracts/: recompiling")
        containers = project.load_contracts(use_cache=False)
        if outdated := stale(containers):
            raise click.ClickException(
                f"ape-vyper and sim/chain/compiler.py compile {', '.join(outdated)} to different code; "
                "check that both use vyper 0.4.3 (`vyper` must be on PATH for ape-vyper)"
            )
    return containers


def local_node_url(provider: Any) -> str | None:
    """The node's URL when it is on this machine; a remote one is left out of the file, since
    provider URLs often carry an API key."""
    url = getattr(provider, "http_uri", None)
    host = urlparse(url).hostname if url else None
    return url if host in ("127.0.0.1", "localhost", "::1") else None


def refuse_mainnet(chain_id: int, network_name: str, allow_mainnet: bool) -> None:
    if allow_mainnet:
        return
    if chain_id in MAINNET_CHAIN_IDS:
        raise click.UsageError(
            f"chain id {chain_id} is {MAINNET_CHAIN_IDS[chain_id]} mainnet; perpsim's protocol (with a faucet "
            "collateral token) is for simulation. Pass --allow-mainnet if you really mean it."
        )
    if network_name == "mainnet":
        raise click.UsageError(f"network {network_name!r} is a mainnet; pass --allow-mainnet if you really mean it")


def default_deployer(network: Any) -> Any:
    """Ape's first test account on a local or fork network; elsewhere --account is required."""
    if network.is_dev:
        return accounts.test_accounts[0]
    raise click.UsageError(f"network {network.choice} needs a deployer: pass --account ALIAS (see `ape accounts list`)")


def role_signers(roles: list[str], deployer: Any, network: Any, provider: Any, config: ProtocolConfig) -> dict[str, Any]:
    """The ape account that plays each role (see module doc)."""
    if network.is_dev:
        try:
            signers = {DEPLOYER: deployer}
            for role in roles[1:]:
                address = address_from_label(role)
                signers[role] = accounts.test_accounts.impersonate_account(address)
                provider.set_balance(address, ROLE_BALANCE_WEI)
            return signers
        except (AccountsError, NotImplementedError):  # this provider cannot impersonate
            spare = [a for a in accounts.test_accounts if a.address != deployer.address]
            if len(spare) >= len(roles) - 1:
                return {DEPLOYER: deployer, **dict(zip(roles[1:], spare))}
    if config.reporters != 1:
        raise click.UsageError(
            f"the config asks for {config.reporters} reporters, but on {network.choice} only the deployer can "
            "sign: set reporters = 1 (and whitelist more later with Oracle.set_reporter)"
        )
    return {role: deployer for role in roles}
