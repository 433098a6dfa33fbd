"""Deploy and wire the perpsim contracts on any chain, and a typed facade over them.

`Protocol.deploy(chain, ProtocolConfig(...))` deploys MockUSDC, Oracle, Vault,
InsuranceFund, Exchange (which creates its ExchangeLens), Liquidator and TriggerOrders, wires their roles and lists the
markets; a market with `spot_pool_liquidity` also gets a SpotPool of its own base token
(MockAsset) against the collateral, seeded at its first price, which its oracle feed may
use as its source or fallback. The facade speaks human units (dollars, base units, fractions) at the edge and
1e18 fixed point inside; every number it returns is read from the chain's views, never
re-derived in Python.
"""

from __future__ import annotations

import copy
import math
from bisect import bisect_left, bisect_right, insort
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sim.bounds import (
    MAX_DURATION,
    MAX_FACTOR,
    MAX_RATIO,
    MAX_BASE_UNITS,
    MAX_PARAM,
    MAX_PARAM_WAD,
    MAX_PRICE_USD,
    MAX_REPORTERS,
    MAX_RESERVE_FACTOR,
    MAX_USD,
    MIN_FIXED_POINT,
    Flag,
    Integer,
    Number,
)
from sim.chain import Chain, Contract, at, compile_project, deploy
from sim.units import USDC_DECIMALS, WAD, from_usdc, from_wad, to_usdc, to_wad

FUNDING_MODELS = {"premium": 0, "velocity": 1}
PRICE_SOURCES = ("reporters", "pool")
POOL_OBSERVATIONS = 64  # SpotPool.vy OBSERVATIONS: its TWAP buffer
POOL_MAX_RESERVE = 2**112 - 1  # SpotPool.vy MAX_RESERVE, token units
POOL_MIN_SHARES = 1_000  # SpotPool.vy MIN_SHARES: the first deposit must mint more
ASSET_DECIMALS = 18  # MockAsset.vy decimals
MARK_MODES = {"oracle": 0, "premium": 1, "median": 2}
TRIGGER_KINDS = {"stop_loss": 0, "take_profit": 1}
# The Exchange's Role flag (one bit per role); the owner's role moves with transfer_ownership.
ROLES = {"guardian": 1, "oracle": 2, "trigger_orders": 4, "liquidator": 8}
MAX_UINT = 2**256 - 1


class MarketConfig(BaseModel):
    """One market's parameters, in human units. Fractions are 0.1 == 10%."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field("ETH", min_length=1, max_length=32, description="asset symbol; also the oracle feed's name")
    initial_price: Number = Field(2000.0, ge=MIN_FIXED_POINT, le=MAX_PRICE_USD,
                                  description="USD price of the first report")
    imf: Number = Field(0.10, ge=MIN_FIXED_POINT, le=1, description="initial margin fraction")
    mmf: Number = Field(0.0625, ge=MIN_FIXED_POINT, lt=1, description="maintenance margin fraction, below imf")
    taker_fee: Number = Field(0.0005, ge=0, lt=1, description="fraction of notional per trade")
    insurance_fee_share: Number = Field(0.2, ge=0, le=1, description="share of the taker fee to the insurance fund")
    skew_scale: Number = Field(1_000_000.0, ge=MIN_FIXED_POINT, le=MAX_PARAM,
                               description="base units; premium = skew / skew_scale")
    max_oi: Number = Field(1_000_000.0, ge=0, le=MAX_BASE_UNITS, description="open-interest cap per side, base units")
    funding_model: Literal["premium", "velocity"] = Field(
        "premium", description="premium (dYdX, Hyperliquid) or velocity (Synthetix)")
    max_funding_rate: Number = Field(0.1, ge=0, le=MAX_PARAM, description="per day; cap of the velocity model")
    max_funding_velocity: Number = Field(0.1, ge=0, le=MAX_PARAM, description="per day, per day, at full skew")
    mark_mode: Literal["oracle", "premium", "median"] = Field(
        "oracle", description="mark = index (oracle), index with the skew premium (premium), or a median of "
        "both and the TWAP (median)")
    premium_half_life: Integer = Field(150, ge=0, le=MAX_PARAM_WAD, description="seconds; median mark's premium EMA")
    twap_window: Integer = Field(600, ge=0, le=MAX_DURATION, description="seconds; median mark's oracle TWAP")
    allow_unrealized_withdrawal: Flag = Field(False, description="the Mango lesson: keep False")
    liquidation_fee: Number = Field(0.025, ge=0, lt=1, description="fraction of the notional closed")
    keeper_fee_share: Number = Field(0.5, ge=0, le=1, description="share of the liquidation fee to the keeper")
    min_position_notional: Number = Field(10.0, ge=0, le=MAX_USD, description="USD; liquidation closes all below it")
    liquidate_when_invalid: Flag = Field(True, description="keep liquidating on the last valid price")
    min_keeper_fee: Number = Field(1.0, ge=0, le=MAX_PARAM,
                                   description="USD; the insurance fund tops a keeper's fee up to it")
    liquidation_limit_scalar: Number = Field(
        1.0, ge=0, le=MAX_PARAM, description="per window (liquidation_window), liquidations close at most this x "
        "taker_fee x skew_scale base units (Synthetix), so trading around a liquidation cannot beat its fees; "
        "0 = no limit")
    liquidation_window: Integer = Field(
        0, ge=0, le=MAX_DURATION, description="seconds of the liquidation limit's trailing window (Synthetix's "
        "maxSecondsInLiquidationWindow); 0 = the current block")
    adl_pnl_factor: Number = Field(
        0.0, ge=0, le=MAX_PARAM, description="ADL by PnL (GMX v2 maxPnlFactorForAdl): when the traders' net "
        "unrealised PnL in the market exceeds this fraction of the Vault's value before it, keepers close the most "
        "profitable positions at the close price; 0 = off")
    adl_pnl_factor_after: Number = Field(
        0.0, ge=0, le=MAX_PARAM, description="ADL by PnL runs until the factor is down to this (GMX "
        "minPnlFactorAfterAdl); at most adl_pnl_factor")
    min_price_fraction: Number = Field(
        0.0, ge=0, le=1, description="the oracle feed's floor as a fraction of initial_price (Chainlink's minAnswer, "
        "e.g. 0.1 / 80 for LUNA's $0.10 at $80): a median below it makes the feed invalid, never clamped; 0 = none")
    spot_pool_liquidity: Number = Field(
        0.0, ge=0, le=MAX_USD, description="USD on each side of the market's SpotPool (its depth), seeded at "
        "initial_price; 0 = no pool")
    price_source: Literal["reporters", "pool"] = Field(
        "reporters", description="what prices the oracle feed: the reporters' median, or the SpotPool (reports "
        "refused; a feed_keeper agent refreshes it)")
    pool_fallback: Flag = Field(False, description="the SpotPool's price stands in while fewer than min_reporters "
                                "reports are fresh")
    pool_window: Integer = Field(0, ge=0, le=MAX_DURATION, description="seconds of the SpotPool's TWAP the feed "
                                 "reads; 0 = its spot price; at most 63 x pool_observation_spacing")
    pool_observation_spacing: Integer = Field(60, ge=1, le=MAX_DURATION,
                                              description="seconds between the SpotPool's TWAP observations")
    delist_move: Number = Field(0.0, ge=0, le=MAX_RATIO, description="governance's delisting policy, acted on by "
                                "the `delister` agent (not a contract parameter): once the index has moved more "
                                "than this fraction from its price `lookback` steps before, the owner delists the "
                                "market at that earlier price; 0 = never")
    # issue 11's limits (Exchange.set_market_limits); every 0 is off
    oi_imf_lower: Number = Field(0.0, ge=0, le=MAX_PARAM, description="USD open interest (the larger side, at "
                                 "the index) above which the initial margin fraction rises (dYdX v4 open-interest "
                                 "lower cap)")
    oi_imf_upper: Number = Field(0.0, ge=0, le=MAX_PARAM, description="USD open interest at which the initial "
                                 "margin fraction reaches 100%, linearly from oi_imf_lower (dYdX v4 upper cap); "
                                 "0 = off")
    max_oi_usd: Number = Field(0.0, ge=0, le=MAX_PARAM, description="USD cap on a side's open interest at the "
                               "index (GMX v2 maxOpenInterest); 0 = none")
    max_oi_vault_factor: Number = Field(0.0, ge=0, le=MAX_FACTOR, description="a side's open interest at most "
                                        "this x the Vault's token balance (USD); 0 = none")
    max_leverage: Number = Field(0.0, ge=0, le=MAX_FACTOR, description="each position's initial margin is at "
                                 "least notional / this (Hyperliquid's per-asset maximum leverage); 0 = none, "
                                 "else at least 1")

    @model_validator(mode="after")
    def _margins_ordered(self) -> MarketConfig:
        if self.mmf >= self.imf:
            raise ValueError(f"mmf ({self.mmf}) must be below imf ({self.imf})")
        return self

    @model_validator(mode="after")
    def _limits_consistent(self) -> MarketConfig:
        if self.oi_imf_upper <= self.oi_imf_lower and (self.oi_imf_upper or self.oi_imf_lower):
            raise ValueError(f"oi_imf_upper ({self.oi_imf_upper}) must be above oi_imf_lower ({self.oi_imf_lower}), "
                             "or both 0 (off)")
        if 0 < self.max_leverage < 1:
            raise ValueError(f"max_leverage ({self.max_leverage}) must be 0 (off) or at least 1")
        return self

    @model_validator(mode="after")
    def _adl_factors_ordered(self) -> MarketConfig:
        if self.adl_pnl_factor_after > self.adl_pnl_factor:
            raise ValueError(f"adl_pnl_factor_after ({self.adl_pnl_factor_after}) must be at most adl_pnl_factor "
                             f"({self.adl_pnl_factor})")
        return self

    @property
    def min_price(self) -> float:
        """The oracle feed's floor, USD (0: none)."""
        return self.min_price_fraction * self.initial_price

    @model_validator(mode="after")
    def _pool_consistent(self) -> MarketConfig:
        if (self.price_source == "pool" or self.pool_fallback) and self.spot_pool_liquidity == 0:
            used = "price_source = \"pool\"" if self.price_source == "pool" else "pool_fallback = true"
            raise ValueError(f"{used} needs a SpotPool: set spot_pool_liquidity above 0")
        if self.price_source == "pool" and self.pool_fallback:
            raise ValueError("pool_fallback is for a feed the reporters price; with price_source = \"pool\" "
                             "the pool is already the source")
        capacity = (POOL_OBSERVATIONS - 1) * self.pool_observation_spacing
        if self.pool_window > capacity:
            raise ValueError(f"pool_window ({self.pool_window} s) must fit the SpotPool's buffer: at most 63 x "
                             f"pool_observation_spacing = {capacity} s")
        if self.spot_pool_liquidity > 0:
            base, quote = self.pool_seed()
            if max(base, quote) > POOL_MAX_RESERVE:
                raise ValueError(f"spot_pool_liquidity {self.spot_pool_liquidity} at initial_price "
                                 f"{self.initial_price} overflows the SpotPool (2**112 token units a side)")
            if math.isqrt(base * quote) <= POOL_MIN_SHARES:
                raise ValueError(f"spot_pool_liquidity {self.spot_pool_liquidity} at initial_price "
                                 f"{self.initial_price} is too little to seed the SpotPool")
        return self

    @property
    def uses_pool(self) -> bool:
        """Whether the oracle feed reads the SpotPool (as its source or its fallback)."""
        return self.price_source == "pool" or self.pool_fallback

    def pool_seed(self) -> tuple[int, int]:
        """The SpotPool's first deposit: (base token units, collateral token units), worth
        `spot_pool_liquidity` USD each at `initial_price`."""
        return (int(self.spot_pool_liquidity / self.initial_price * 10**ASSET_DECIMALS),
                to_usdc(self.spot_pool_liquidity))

    def pool_source(self, pool: Any) -> tuple:
        """The Oracle's PoolSource struct for this market's pool (an address or a ContractAddress)."""
        return (pool, self.pool_window, self.price_source == "pool")

    def exchange_params(self, asset_id: int) -> tuple:
        """The Exchange's MarketParams struct, in its field order."""
        return (
            asset_id,
            to_wad(self.imf),
            to_wad(self.mmf),
            to_wad(self.taker_fee),
            to_wad(self.insurance_fee_share),
            to_wad(self.skew_scale),
            to_wad(self.max_oi),
            FUNDING_MODELS[self.funding_model],
            to_wad(self.max_funding_rate),
            to_wad(self.max_funding_velocity),
            MARK_MODES[self.mark_mode],
            self.premium_half_life,
            self.twap_window,
            self.allow_unrealized_withdrawal,
        )

    @property
    def has_limits(self) -> bool:
        """Whether any of the market's limits is on (then the deployment sets them)."""
        return any((self.oi_imf_upper, self.max_oi_usd, self.max_oi_vault_factor, self.max_leverage))

    def market_limits(self, settlement_price: int = 0) -> tuple:
        """The Exchange's MarketLimits struct, in its field order (`settlement_price` USD 1e18)."""
        return (to_wad(self.oi_imf_lower), to_wad(self.oi_imf_upper), to_wad(self.max_oi_usd),
                to_wad(self.max_oi_vault_factor), to_wad(self.max_leverage), settlement_price)

    def liquidation_params(self) -> tuple:
        """The Liquidator's LiquidationParams struct, in its field order."""
        return (
            to_wad(self.liquidation_fee),
            to_wad(self.keeper_fee_share),
            to_wad(self.min_position_notional),
            self.liquidate_when_invalid,
            to_wad(self.min_keeper_fee),
            to_wad(self.liquidation_limit_scalar),
            self.liquidation_window,
            to_wad(self.adl_pnl_factor),
            to_wad(self.adl_pnl_factor_after),
        )


class OracleConfig(BaseModel):
    """The price feeds' settings, shared by every asset."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_age: Integer = Field(120, gt=0, le=MAX_DURATION, description="seconds a report or accepted price stays fresh")
    min_reporters: Integer = Field(1, ge=1, le=MAX_REPORTERS, description="fresh reports needed for a price")
    max_deviation: Number = Field(0.0, ge=0, le=MAX_PARAM,
                                  description="largest accepted move from the last price; 0 = off")
    breach_timeout: Integer = Field(300, ge=0, le=MAX_DURATION,
                                    description="seconds a breach persists before it is accepted; 0 = never")
    observation_spacing: Integer = Field(60, ge=0, le=MAX_DURATION, description="seconds between TWAP observations")
    worse_price_when_invalid: Flag = Field(
        True, description="while a feed is invalid, value leaves at the worse end of the disputed band "
        "(the last price and the fresh median); false: at the last accepted price")

    def feed_config(self, min_price: float = 0.0) -> tuple:
        """The Oracle's FeedConfig struct, with a market's floor (`min_price`, USD; 0: none)."""
        return (self.max_age, self.min_reporters, to_wad(self.max_deviation), self.breach_timeout,
                self.observation_spacing, self.worse_price_when_invalid, to_wad(min_price))


class ProtocolConfig(BaseModel):
    """Everything `Protocol.deploy` needs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    markets: tuple[MarketConfig, ...] = (MarketConfig(),)
    oracle: OracleConfig = OracleConfig()
    reporters: Integer = Field(1, ge=1, le=MAX_REPORTERS, description="whitelisted reporter accounts (reporter-0, ...)")
    reserve_factor: Number = Field(0.2, ge=0, le=MAX_RESERVE_FACTOR,
                                   description="Vault reserves / open-interest notional")
    insurance_fund: Number = Field(0.0, ge=0, le=MAX_USD, description="USD the fund starts with")
    vault_liquidity: Number = Field(0.0, ge=0, le=MAX_USD, description="USD a seed LP deposits at deployment")
    nav_at_close_price: Flag = Field(
        True, description="the Vault values the traders' book at what closing it pays, impact included; "
        "false: at the index, so the impact traders paid counts as NAV at once")

    @model_validator(mode="after")
    def _unique_names(self) -> ProtocolConfig:
        names = [m.name for m in self.markets]
        if len(set(names)) != len(names):
            raise ValueError(f"market names must be unique, got {names}")
        if not 1 <= len(names) <= 16:
            raise ValueError(f"between 1 and 16 markets, got {len(names)}")
        return self


# ---------------------------------------------------------------------- deployment plan
# One list of steps deploys and wires the protocol, run by `Protocol.deploy` on a sim chain
# and by scripts/deploy.py through ape, so the two cannot drift apart.

CONTRACT_NAMES = ("MockUSDC", "Oracle", "Vault", "InsuranceFund", "Exchange", "ExchangeLens", "Liquidator", "TriggerOrders")
DEPLOYER = "deployer"
SEED_LP = "seed-lp"


def reporter_role(index: int) -> str:
    """The role (and sim account label) of the `index`-th whitelisted price reporter."""
    return f"reporter-{index}"


@dataclass(frozen=True)
class ContractAddress:
    """An argument that is the address of a contract deployed by an earlier step."""

    contract: str


@dataclass(frozen=True)
class InitCode:
    """An argument that is a contract's compiled init code (the Exchange creates its
    ExchangeLens from it)."""

    contract: str


@dataclass(frozen=True)
class RoleAddress:
    """An argument that is the address of the account playing a role (`DEPLOYER`, `SEED_LP`, ...)."""

    role: str


@dataclass(frozen=True)
class DeployStep:
    """Deploy `contract` from the deployer with constructor arguments `args`; later steps
    name it `key` (the contract's name, or e.g. "SpotPool:ETH" when there is one per market)."""

    contract: str
    args: tuple = ()
    name: str = ""
    creates: tuple[tuple[str, str], ...] = ()  # (contract, getter): a contract its constructor creates, at getter()

    @property
    def key(self) -> str:
        return self.name or self.contract


def pool_key(market: str) -> str:
    """The deployment's name of a market's SpotPool."""
    return f"SpotPool:{market}"


def asset_key(market: str) -> str:
    """The deployment's name of a market's base token (MockAsset)."""
    return f"MockAsset:{market}"


def artifact_name(key: str) -> str:
    """The contract a deployment name stands for ("SpotPool:ETH" -> "SpotPool")."""
    return key.split(":", 1)[0]


@dataclass(frozen=True)
class CallStep:
    """Send `contract.function(*args)` from the account playing role `sender`."""

    contract: str
    function: str
    args: tuple = ()
    sender: str = DEPLOYER


def deployment_plan(config: ProtocolConfig) -> list[DeployStep | CallStep]:
    """Every transaction that deploys and wires the protocol for `config`, in order: the
    contracts, their roles, the reporters, each market's feed, first prices, market and
    liquidation parameters, then the insurance fund's and the seed LP's deposits."""
    usdc, fund, vault, exchange = (ContractAddress(n) for n in ("MockUSDC", "InsuranceFund", "Vault", "Exchange"))
    steps: list[DeployStep | CallStep] = [
        DeployStep("MockUSDC"),
        DeployStep("Oracle"),
        DeployStep("Vault", (usdc, USDC_DECIMALS, to_wad(config.reserve_factor))),
        DeployStep("InsuranceFund", (usdc,)),
        DeployStep("Exchange", (usdc, USDC_DECIMALS, ContractAddress("Oracle"), vault, fund, InitCode("ExchangeLens")),
                   creates=(("ExchangeLens", "LENS"),)),
        DeployStep("Liquidator", (exchange,)),
        DeployStep("TriggerOrders", (exchange,)),
        CallStep("Vault", "set_exchange", (exchange,)),
        CallStep("InsuranceFund", "set_exchange", (exchange,)),
        CallStep("Exchange", "set_role", (ROLES["liquidator"], ContractAddress("Liquidator"))),
        CallStep("Exchange", "set_role", (ROLES["trigger_orders"], ContractAddress("TriggerOrders"))),
    ]
    if not config.nav_at_close_price:
        steps.append(CallStep("Vault", "set_nav_at_close_price", (False,)))
    reporters = [reporter_role(i) for i in range(config.reporters)]
    steps += [CallStep("Oracle", "set_reporter", (RoleAddress(r), True)) for r in reporters]
    for asset_id, market in enumerate(config.markets):
        steps.append(CallStep("Oracle", "set_feed", (asset_id, config.oracle.feed_config(market.min_price))))
        steps += [CallStep("Oracle", "report", (asset_id, to_wad(market.initial_price)), sender=r) for r in reporters]
        if market.spot_pool_liquidity > 0:
            steps += _pool_steps(asset_id, market)
        steps.append(CallStep("Exchange", "add_market", (market.exchange_params(asset_id),)))
        if market.has_limits:
            steps.append(CallStep("Exchange", "set_market_limits", (asset_id, market.market_limits())))
        steps.append(CallStep("Liquidator", "set_params", (asset_id, market.liquidation_params())))
    if config.insurance_fund > 0:
        steps += [
            CallStep("MockUSDC", "mint", (RoleAddress(DEPLOYER), to_usdc(config.insurance_fund))),
            CallStep("MockUSDC", "approve", (fund, MAX_UINT)),
            CallStep("InsuranceFund", "fund", (to_usdc(config.insurance_fund),)),
        ]
    if config.vault_liquidity > 0:
        steps += [
            CallStep("MockUSDC", "mint", (RoleAddress(SEED_LP), to_usdc(config.vault_liquidity)), sender=SEED_LP),
            CallStep("MockUSDC", "approve", (vault, MAX_UINT), sender=SEED_LP),
            CallStep("Vault", "deposit", (to_usdc(config.vault_liquidity),), sender=SEED_LP),
        ]
    return steps


def _pool_steps(asset_id: int, market: MarketConfig) -> list[DeployStep | CallStep]:
    """A market's SpotPool: its base token, the pool, the deployer's seed at the first
    price, and the oracle feed's source (refreshed at once when the pool is the source)."""
    asset, pool = asset_key(market.name), pool_key(market.name)
    base, quote = market.pool_seed()
    steps: list[DeployStep | CallStep] = [
        DeployStep("MockAsset", name=asset),
        DeployStep("SpotPool", (ContractAddress(asset), ContractAddress("MockUSDC"), market.pool_observation_spacing),
                   name=pool),
        CallStep(asset, "mint", (RoleAddress(DEPLOYER), base)),
        CallStep("MockUSDC", "mint", (RoleAddress(DEPLOYER), quote)),
        CallStep(asset, "approve", (ContractAddress(pool), MAX_UINT)),
        CallStep("MockUSDC", "approve", (ContractAddress(pool), MAX_UINT)),
        CallStep(pool, "add_liquidity", (base, quote, 0)),
    ]
    if market.uses_pool:
        steps.append(CallStep("Oracle", "set_source", (asset_id, market.pool_source(ContractAddress(pool)))))
    if market.price_source == "pool":
        steps.append(CallStep("Oracle", "refresh", (asset_id,)))
    return steps


def plan_roles(plan: list[DeployStep | CallStep]) -> list[str]:
    """The roles whose accounts `plan` needs, the deployer first."""
    roles = [DEPLOYER]
    for step in plan:
        candidates = [a.role for a in step.args if isinstance(a, RoleAddress)]
        if isinstance(step, CallStep):
            candidates.append(step.sender)
        roles += [r for r in candidates if r not in roles]
    return roles


def resolve_args(args: tuple, contracts: dict[str, str], account: Any) -> tuple:
    """`args` with every ContractAddress and RoleAddress replaced by its address and every
    InitCode by the compiled init code; `account(role)` gives a role's address."""
    return tuple(
        contracts[a.contract] if isinstance(a, ContractAddress) else account(a.role) if isinstance(a, RoleAddress)
        else compile_project()[a.contract].bytecode if isinstance(a, InitCode)
        else resolve_args(a, contracts, account) if isinstance(a, tuple) else a
        for a in args
    )


def planned_contracts(config: ProtocolConfig) -> list[str]:
    """The names of every contract `deployment_plan(config)` deploys or has a constructor create."""
    return [name for step in deployment_plan(config) if isinstance(step, DeployStep)
            for name in (step.key, *(created for created, _ in step.creates))]


def _event_arg(receipt: Any, event: str, arg: str) -> Any:
    """`arg` of the receipt's first `event`: what the function also returns, read without its
    return data (which a node's receipt does not carry; see sim/chain/rpc.py)."""
    for ev in receipt.events:
        if ev.name == event:
            return ev.args[arg]
    raise ValueError(f"the transaction logged no {event} event (it logged {[ev.name for ev in receipt.events]})")


def _non_negative(**values: float | int | None) -> None:
    """Reject a negative amount, price, size limit or id before it reaches the ABI encoder
    (the contracts take them unsigned), naming the argument."""
    for name, value in values.items():
        if value is not None and value < 0:
            raise ValueError(f"{name} must not be negative, got {value}")


@dataclass(frozen=True)
class Health:
    """A subaccount's margin state, USD."""

    equity: float
    initial_margin: float
    maintenance_margin: float
    notional: float

    @property
    def margin_ratio(self) -> float:
        return self.equity / self.notional if self.notional else float("inf")


@dataclass(frozen=True)
class Position:
    """A position as the chain stores it, in human units."""

    size: float  # base units; > 0 long
    entry_price: float  # cost / size
    cost: float  # USD, signed like size
    size_wad: int


@dataclass(frozen=True)
class AdlCandidate:
    owner: str
    subaccount: int
    size: float
    pnl: float
    leverage: float

    @property
    def score(self) -> float:
        """Hyperliquid / dYdX v3 ranking: unrealised PnL times leverage."""
        return self.pnl * self.leverage


class Protocol:
    """The deployed protocol on one chain, and the actions and views agents use."""

    def __init__(self, chain: Chain, config: ProtocolConfig, contracts: dict[str, Contract], deployer: str):
        self.chain = chain
        self.config = config
        self.deployer = deployer
        self.usdc = contracts["MockUSDC"]
        self.oracle = contracts["Oracle"]
        self.vault = contracts["Vault"]
        self.insurance_fund = contracts["InsuranceFund"]
        self.exchange = contracts["Exchange"]
        self.lens = contracts["ExchangeLens"]  # the Exchange's views for off-chain readers
        self.liquidator = contracts["Liquidator"]
        self.trigger_orders = contracts["TriggerOrders"]
        self.contracts = contracts
        self.market_ids = {m.name: i for i, m in enumerate(config.markets)}
        self.pools = {m.name: contracts[pool_key(m.name)] for m in config.markets if m.spot_pool_liquidity > 0}
        self.pool_assets = {m.name: contracts[asset_key(m.name)] for m in config.markets if m.spot_pool_liquidity > 0}
        self.reporters = [chain.new_account(reporter_role(i)) for i in range(config.reporters)]
        self._approved: set[tuple[str, str]] = set()
        self.index = PositionIndex(self)  # the off-chain index (end of this module)

    # ------------------------------------------------------------------ deploy
    @classmethod
    def deploy(cls, chain: Chain, config: ProtocolConfig | None = None, deployer_label: str = "deployer") -> Protocol:
        """Deploy and wire every contract, list the markets, seed the first prices.

        Runs `deployment_plan(config)`; each role is played by the chain account of its label
        (the deployer's is `deployer_label`)."""
        config = config or ProtocolConfig()
        artifacts = compile_project()
        accounts: dict[str, str] = {}

        def account(role: str) -> str:
            if role not in accounts:
                accounts[role] = chain.new_account(deployer_label if role == DEPLOYER else role)
            return accounts[role]

        contracts: dict[str, Contract] = {}
        approved: set[tuple[str, str]] = set()
        for step in deployment_plan(config):
            args = resolve_args(step.args, {n: c.address for n, c in contracts.items()}, account)
            if isinstance(step, DeployStep):
                contracts[step.key] = deploy(chain, artifacts[step.contract], *args, sender=account(DEPLOYER))
                for created, getter in step.creates:
                    contracts[created] = at(chain, artifacts[created], contracts[step.key].call(getter))
                continue
            contracts[step.contract].transact(step.function, *args, sender=account(step.sender))
            if step.contract == "MockUSDC" and step.function == "approve":
                approved.add((account(step.sender), args[0]))
        protocol = cls(chain, config, contracts, account(DEPLOYER))
        protocol._approved |= approved
        return protocol

    @classmethod
    def attach(cls, chain: Chain, config: ProtocolConfig, addresses: dict[str, str], deployer: str) -> Protocol:
        """The facade over a protocol already deployed at `addresses` (names as in `addresses()`)."""
        artifacts = compile_project()
        planned = planned_contracts(config)
        missing = sorted(set(planned) - set(addresses))
        if missing:
            raise KeyError(f"deployment is missing contracts {missing}; it has {sorted(addresses)}")
        contracts = {name: at(chain, artifacts[artifact_name(name)], addresses[name]) for name in planned}
        return cls(chain, config, contracts, deployer)

    def snapshot(self) -> tuple:
        """Chain state and the facade's caches, to return to with `revert`."""
        return (self.chain.snapshot(), set(self._approved), self.index.copy())

    def revert(self, snapshot: tuple) -> None:
        chain_snapshot, approved, index = snapshot
        self.chain.revert(chain_snapshot)
        self._approved, self.index = set(approved), index.copy()

    def addresses(self) -> dict[str, str]:
        return {name: c.address for name, c in self.contracts.items()}

    def market(self, market: str | int) -> int:
        """A market's id from its name or id, with a clear error for an unknown one."""
        if isinstance(market, int):
            if not 0 <= market < len(self.config.markets):
                raise KeyError(f"unknown market id {market}; markets are {list(self.market_ids)}")
            return market
        try:
            return self.market_ids[market]
        except KeyError:
            raise KeyError(f"unknown market {market!r}; markets are {list(self.market_ids)}") from None

    # ------------------------------------------------------------------ admin and oracle
    def report_price(self, market: str | int, price: float, reporter: str | None = None) -> None:
        """One reporter's price for a market's asset (USD)."""
        _non_negative(price=price)
        self.oracle.transact("report", self.market(market), to_wad(price), sender=reporter or self.reporters[0])

    def report_all(self, market: str | int, price: float) -> None:
        """Every whitelisted reporter reports the same price."""
        for reporter in self.reporters:
            self.report_price(market, price, reporter)

    def refresh_feed(self, market: str | int, sender: str | None = None) -> bool:
        """Submit a pool-priced feed's SpotPool price to the oracle (anyone may); False when
        the pool is a fallback and enough reports are fresh, or has no price."""
        receipt = self.oracle.transact("refresh", self.market(market), sender=sender or self.deployer)
        return bool(receipt.return_value)

    # ------------------------------------------------------------------ spot pools
    def pool(self, market: str | int) -> Contract:
        """A market's SpotPool, with a clear error when it has none."""
        name = self.config.markets[self.market(market)].name
        if name not in self.pools:
            raise KeyError(f"market {name!r} has no SpotPool (its spot_pool_liquidity is 0)")
        return self.pools[name]

    def spot_price(self, market: str | int) -> float:
        """The SpotPool's marginal price now, USD per base unit."""
        return from_wad(self.pool(market).call("spot_price"))

    def pool_twap(self, market: str | int, window: int) -> float:
        """The SpotPool's time-weighted price over about `window` seconds, USD per base unit."""
        _non_negative(window=window)
        return from_wad(self.pool(market).call("twap", window))

    def pool_reserves(self, market: str | int) -> tuple[float, float]:
        """The SpotPool's reserves: (base units, USD)."""
        pool = self.pool(market)
        return (pool.call("reserve_base") / 10**ASSET_DECIMALS, from_usdc(pool.call("reserve_quote")))

    def pool_quote(self, market: str | int, sell_base: bool, amount: float) -> float:
        """What `swap` would pay now for `amount` (base units when selling base, else USD)."""
        _non_negative(amount=amount)
        units = self._pool_units(sell_base, amount)
        out = self.pool(market).call("get_amount_out", sell_base, units)
        return from_usdc(out) if sell_base else out / 10**ASSET_DECIMALS

    def mint_base(self, account: str, market: str | int, amount: float) -> None:
        """Faucet a market's base token (base units) to `account` (simulation only)."""
        _non_negative(amount=amount)
        name = self.config.markets[self.market(market)].name
        self.pool(market)  # the clear error when there is no pool
        self.pool_assets[name].transact("mint", account, self._pool_units(True, amount), sender=account)

    def base_balance(self, account: str, market: str | int) -> float:
        """`account`'s balance of a market's SpotPool base token, base units."""
        name = self.config.markets[self.market(market)].name
        self.pool(market)  # the clear error when there is no pool
        return self.pool_assets[name].call("balanceOf", account) / 10**ASSET_DECIMALS

    def swap(self, account: str, market: str | int, sell_base: bool, amount: float, min_out: float = 0.0) -> float:
        """Sell exactly `amount` on the market's SpotPool (base units when selling base, else
        USD) for at least `min_out` of the other; returns what it paid."""
        _non_negative(amount=amount, min_out=min_out)
        name = self.config.markets[self.market(market)].name
        pool = self.pool(market)
        token = self.pool_assets[name] if sell_base else self.usdc
        if (account, pool.address, token.address) not in self._approved:
            token.transact("approve", pool.address, MAX_UINT, sender=account, decode=False)
            self._approved.add((account, pool.address, token.address))
        receipt = pool.transact("swap", sell_base, self._pool_units(sell_base, amount),
                                self._pool_units(not sell_base, min_out), sender=account)
        out = _event_arg(receipt, "Swap", "amount_out")
        return from_usdc(out) if sell_base else out / 10**ASSET_DECIMALS

    @staticmethod
    def _pool_units(base: bool, amount: float) -> int:
        return int(amount * 10**ASSET_DECIMALS) if base else to_usdc(amount)

    def set_market_status(self, market: str | int, paused: bool, reduce_only: bool, sender: str | None = None) -> None:
        self.exchange.transact("set_market_status", self.market(market), paused, reduce_only, sender=sender or self.deployer)

    def set_market_params(self, config: MarketConfig, sender: str | None = None) -> None:
        """Change a listed market's parameters and limits (matched by name)."""
        market = self.market(config.name)
        self.exchange.transact("set_market_params", market, config.exchange_params(market), sender=sender or self.deployer)
        self.liquidator.transact("set_params", market, config.liquidation_params(), sender=sender or self.deployer)
        limits = self.exchange.call("market_limits", market)
        if config.has_limits or any(limits[:5]):  # a settlement price, once set, stays
            self.exchange.transact("set_market_limits", market, config.market_limits(limits[5]),
                                   sender=sender or self.deployer)

    def delist(self, market: str | int, settlement_price: float, sender: str | None = None) -> None:
        """Delist a market for good at `settlement_price` (USD): it turns reduce-only, and every
        position can be closed at that price (`settle`). Only the owner."""
        _non_negative(settlement_price=settlement_price)
        m = self.market(market)
        limits = list(self.exchange.call("market_limits", m))
        limits[5] = to_wad(settlement_price)
        self.exchange.transact("set_market_limits", m, tuple(limits), sender=sender or self.deployer)

    def settlement_price(self, market: str | int) -> float:
        """A delisted market's settlement price (USD); 0 while it is listed."""
        return from_wad(self.exchange.call("market_limits", self.market(market))[5])

    def settle(self, keeper: str, owner: str, market: str | int, subaccount: int = 0) -> None:
        """Close `owner`'s position in a delisted market at its settlement price, no fee (anyone)."""
        _non_negative(subaccount=subaccount)
        self.exchange.transact("settle", owner, subaccount, self.market(market), sender=keeper)

    def initial_margin_fraction(self, market: str | int) -> float:
        """The initial margin fraction a position in `market` is held to now (open interest and
        maximum leverage included)."""
        return from_wad(self.lens.call("initial_margin_fraction", self.market(market)))

    # ------------------------------------------------------------------ collateral
    def mint(self, account: str, usd: float) -> None:
        """Faucet collateral tokens to `account` (simulation only)."""
        _non_negative(usd=usd)
        self.usdc.transact("mint", account, to_usdc(usd), sender=account)

    def _approve(self, owner: str, spender: str) -> None:
        if (owner, spender) not in self._approved:
            self.usdc.transact("approve", spender, MAX_UINT, sender=owner, decode=False)
            self._approved.add((owner, spender))

    def deposit(self, account: str, usd: float, subaccount: int = 0) -> None:
        _non_negative(usd=usd, subaccount=subaccount)
        self._approve(account, self.exchange.address)
        self.exchange.transact("deposit", subaccount, to_usdc(usd), sender=account)

    def withdraw(self, account: str, usd: float, subaccount: int = 0) -> None:
        _non_negative(usd=usd, subaccount=subaccount)
        self.exchange.transact("withdraw", subaccount, to_usdc(usd), sender=account)

    def set_isolated(self, account: str, subaccount: int, isolated: bool = True) -> None:
        _non_negative(subaccount=subaccount)
        self.exchange.transact("set_isolated", subaccount, isolated, sender=account)

    # ------------------------------------------------------------------ trading
    def trade(
        self, account: str, market: str | int, size: float, subaccount: int = 0,
        limit_price: float | None = None, slippage: float = 0.05,
    ) -> float:
        """Buy (size > 0) or sell base units; returns the fill price (USD).

        Without `limit_price`, the limit is the quoted fill moved by `slippage` against the trader."""
        size_wad = to_wad(size)
        if size_wad == 0:
            raise ValueError(f"trade size {size} rounds to zero")
        return self.trade_wad(account, self.market(market), size_wad, subaccount, limit_price, slippage)

    def trade_wad(self, account: str, market: int, size_wad: int, subaccount: int = 0,
                  limit_price: float | None = None, slippage: float = 0.05) -> float:
        """`trade` with the size already in 1e18 base units (exact closes)."""
        _non_negative(subaccount=subaccount, limit_price=limit_price)
        if limit_price is None:
            quote = self.lens.call("fill_price", market, size_wad)
            worse = WAD + to_wad(slippage) if size_wad > 0 else WAD - to_wad(slippage)
            limit_wad = quote * worse // WAD
        else:
            limit_wad = to_wad(limit_price)
        receipt = self.exchange.transact("trade", subaccount, market, size_wad, limit_wad, sender=account, decode=False)
        return from_wad(_event_arg(receipt, "Trade", "fill_price"))

    def open_position(self, account: str, market: str | int, size: float, subaccount: int = 0, **kw: Any) -> float:
        return self.trade(account, market, size, subaccount, **kw)

    def close_position(self, account: str, market: str | int, subaccount: int = 0, **kw: Any) -> float | None:
        """Close the whole position; None when there is none."""
        _non_negative(subaccount=subaccount)
        m = self.market(market)
        size_wad = self.exchange.call("positions", account, subaccount, m)[0]
        if size_wad == 0:
            return None
        return self.trade_wad(account, m, -size_wad, subaccount, **kw)

    # ------------------------------------------------------------------ LPs
    def lp_deposit(self, account: str, usd: float) -> float:
        """Deposit into the Vault; returns shares minted."""
        _non_negative(usd=usd)
        self._approve(account, self.vault.address)
        return from_wad(self.vault.transact("deposit", to_usdc(usd), sender=account).return_value)

    def lp_withdraw(self, account: str, shares: float | None = None) -> float:
        """Burn shares (all of them by default); returns USD paid."""
        _non_negative(shares=shares)
        share_wad = self.vault.call("shares", account) if shares is None else to_wad(shares)
        return from_usdc(self.vault.transact("withdraw", share_wad, sender=account).return_value)

    # ------------------------------------------------------------------ keepers
    def liquidate(self, keeper: str, owner: str, market: str | int, subaccount: int = 0, max_size: float | None = None) -> float:
        """Liquidate; returns base units closed (0 when the account was declared bankrupt)."""
        _non_negative(subaccount=subaccount, max_size=max_size)
        size = MAX_UINT if max_size is None else to_wad(max_size)
        receipt = self.liquidator.transact("liquidate", owner, subaccount, self.market(market), size, sender=keeper)
        return from_wad(receipt.return_value)

    def deleverage(self, keeper: str, bankrupt: tuple[str, int], target: tuple[str, int], market: str | int,
                   size: float | None = None) -> float:
        _non_negative(bankrupt_subaccount=bankrupt[1], target_subaccount=target[1], size=size)
        size_wad = MAX_UINT if size is None else to_wad(size)
        receipt = self.liquidator.transact(
            "deleverage", bankrupt[0], bankrupt[1], target[0], target[1], self.market(market), size_wad, sender=keeper)
        return from_wad(receipt.return_value)

    def deleverage_by_pnl(self, keeper: str, owner: str, market: str | int, subaccount: int = 0,
                          max_size: float | None = None) -> float:
        """ADL by PnL factor (GMX v2): close up to `max_size` of a profitable position while the
        market's PnL factor calls for it; returns base units closed (0: the factor was already
        down to adl_pnl_factor_after, which ends the round)."""
        _non_negative(subaccount=subaccount, max_size=max_size)
        size = MAX_UINT if max_size is None else to_wad(max_size)
        receipt = self.liquidator.transact("deleverage_by_pnl", owner, subaccount, self.market(market), size,
                                           sender=keeper)
        return from_wad(receipt.return_value)

    def pnl_factor(self, market: str | int) -> float:
        """The traders' net unrealised PnL in `market` over the Vault's value before it (inf
        when the Vault is worth nothing without it), as ADL by PnL reads it."""
        factor = self.liquidator.call("pnl_factor", self.market(market))
        return float("inf") if factor == MAX_UINT else from_wad(factor)

    def pnl_adl_excess(self, market: str | int) -> float:
        """USD of the traders' PnL in `market` that ADL by PnL would shed now (down to
        adl_pnl_factor_after of the Vault's value before it); 0 when it would not act: off,
        or the factor at most adl_pnl_factor with no round under way."""
        m = self.market(market)
        params = self.liquidator.call("params", m)
        start, after = params[-2], params[-1]
        if start == 0:
            return 0.0
        factor = self.liquidator.call("pnl_factor", m)
        if not (factor > start or (factor > after and self.liquidator.call("adl_active", m))):
            return 0.0
        pnl, pool = self.vault.call("market_pnl", m)
        return max(from_wad(pnl) - from_wad(after) * from_wad(pool), 0.0)

    def discharge(self, keeper: str, owner: str, subaccount: int = 0) -> None:
        """A bankrupt subaccount whose equity has recovered leaves bankruptcy."""
        _non_negative(subaccount=subaccount)
        self.liquidator.transact("discharge", owner, subaccount, sender=keeper)

    def place_trigger(self, account: str, market: str | int, size: float, trigger_price: float,
                      kind: Literal["stop_loss", "take_profit"] = "stop_loss", subaccount: int = 0,
                      limit_price: float | None = None, keeper_fee: float = 1.0, slippage: float = 0.01) -> int:
        """Place a reduce-only stop-loss or take-profit; returns the order id.

        Every order has a limit: without `limit_price`, the trigger moved by `slippage`
        against the order (a sell's floor below it, a buy's ceiling above)."""
        _non_negative(trigger_price=trigger_price, limit_price=limit_price, keeper_fee=keeper_fee, subaccount=subaccount,
                      slippage=slippage)
        if limit_price is None:
            limit_price = trigger_price * (1 + slippage if size > 0 else 1 - slippage)
        limit_wad = to_wad(limit_price)
        receipt = self.trigger_orders.transact(
            "place", subaccount, self.market(market), to_wad(size), to_wad(trigger_price), limit_wad,
            TRIGGER_KINDS[kind], to_usdc(keeper_fee), sender=account, decode=False)
        return _event_arg(receipt, "OrderPlaced", "order_id")

    def cancel_trigger(self, account: str, order_id: int) -> None:
        _non_negative(order_id=order_id)
        self.trigger_orders.transact("cancel", order_id, sender=account)

    def execute_trigger(self, keeper: str, order_id: int) -> bool:
        _non_negative(order_id=order_id)
        return self.trigger_orders.transact("execute", order_id, sender=keeper).return_value

    # ------------------------------------------------------------------ views
    def health(self, account: str, subaccount: int = 0) -> Health:
        e, im, mm, n = self.exchange.call("health", account, subaccount)
        return Health(from_wad(e), from_wad(im), from_wad(mm), from_wad(n))

    def equity(self, account: str, subaccount: int = 0) -> float:
        return from_wad(self.lens.call("equity", account, subaccount))

    def margin_ratio(self, account: str, subaccount: int = 0) -> float:
        """Equity over notional; inf with no position, 0 under water."""
        h = self.health(account, subaccount)
        return max(h.margin_ratio, 0.0)

    def account_markets(self, account: str, subaccount: int = 0) -> list[int]:
        """Ids of the markets a subaccount holds positions in."""
        return list(self.exchange.call("accounts", account, subaccount)[1])

    def collateral(self, account: str, subaccount: int = 0) -> float:
        return from_wad(self.exchange.call("accounts", account, subaccount)[0])

    def position(self, account: str, market: str | int, subaccount: int = 0) -> Position:
        size, cost, _ = self.exchange.call("positions", account, subaccount, self.market(market))
        entry = cost / size if size else 0.0
        return Position(size=from_wad(size), entry_price=entry, cost=from_wad(cost), size_wad=size)

    def position_pnl(self, account: str, market: str | int, subaccount: int = 0) -> float:
        """Unrealised PnL at mark minus funding owed (USD)."""
        return from_wad(self.lens.call("position_pnl", account, subaccount, self.market(market)))

    def accrued_funding(self, account: str, market: str | int, subaccount: int = 0) -> float:
        """Funding owed since last settlement (USD; negative: owed to the position)."""
        return from_wad(self.lens.call("accrued_funding", account, subaccount, self.market(market)))

    def liquidation_price(self, account: str, market: str | int, subaccount: int = 0) -> float:
        return from_wad(self.liquidator.call("liquidation_price", account, subaccount, self.market(market)))

    def is_liquidatable(self, account: str, subaccount: int = 0) -> bool:
        return self.liquidator.call("is_liquidatable", account, subaccount)

    def index_price(self, market: str | int) -> tuple[float, bool]:
        price, valid = self.exchange.call("index_price", self.market(market))
        return from_wad(price), valid

    def mark_price(self, market: str | int) -> float:
        return from_wad(self.exchange.call("mark_price", self.market(market)))

    def funding_rate(self, market: str | int) -> float:
        """Per day; positive: longs pay."""
        return from_wad(self.lens.call("funding_rate", self.market(market)))

    def fill_price(self, market: str | int, size: float) -> float:
        return from_wad(self.lens.call("fill_price", self.market(market), to_wad(size)))

    def market_state(self, market: str | int) -> dict[str, Any]:
        return dict(zip(MARKET_STATE_FIELDS, self.exchange.call("market_states", self.market(market))))

    def open_interest(self, market: str | int) -> tuple[float, float]:
        s = self.market_state(market)
        return from_wad(s["oi_long"]), from_wad(s["oi_short"])

    def deficit(self, market: str | int) -> float:
        return from_wad(self.market_state(market)["deficit"])

    def vault_nav(self) -> float:
        """The Vault's NAV at the bid: what redemptions pay (USD)."""
        return from_wad(self.vault.call("nav"))

    def vault_nav_bounds(self) -> tuple[float, float]:
        """(bid, ask) NAV: redemptions pay the bid, deposits buy at the ask (USD)."""
        bid, ask = self.vault.call("nav_bounds")
        return from_wad(bid), from_wad(ask)

    def insurance_balance(self) -> float:
        return from_usdc(self.insurance_fund.call("token_balance"))

    def insurance_paid(self) -> float:
        return from_usdc(self.insurance_fund.call("total_paid"))

    def token_balance(self, account: str) -> float:
        return from_usdc(self.usdc.call("balanceOf", account))

    # ------------------------------------------------------------------ off-chain indexes
    # The facade's one index of open positions and trigger orders (`PositionIndex`, at the
    # end of this module), kept from the chain's events: the keepers, the recorder, ADL and
    # the agents read it instead of asking the chain about every account.

    def read_market(self, market: str | int) -> MarketReading:
        """A market's views at this moment, in one bundle the agents and the recorder share:
        the index price and the feed's validity, the mark, the funding rate and the stored
        market state."""
        m = self.market(market)
        index, valid = self.exchange.call("index_price", m)
        return MarketReading(m, index, valid, self.exchange.call("mark_price", m), self.lens.call("funding_rate", m),
                             self.exchange.call("market_states", m), self.chain.timestamp)

    def accounts_with_positions(self) -> list[tuple[str, int]]:
        """Subaccounts holding at least one position, from the index."""
        return self.index.accounts_with_positions()

    def position_size_wad(self, account: str, market: str | int, subaccount: int = 0) -> int:
        """A position's size (1e18 base units; > 0 long), from the index: no call."""
        return self.index.size(account, subaccount, self.market(market))

    def position_size(self, account: str, market: str | int, subaccount: int = 0) -> float:
        """A position's size (base units; > 0 long), from the index: no call."""
        return from_wad(self.position_size_wad(account, market, subaccount))

    def liquidatable_accounts(self, readings: Mapping[int, MarketReading] | None = None) -> list[tuple[str, int]]:
        """Subaccounts below maintenance margin now: the Liquidator's `is_liquidatable`, asked
        only of the accounts the index cannot rule out (`PositionIndex.liquidatable`).
        `readings`: every market as read now (`read_market`); read here when not given."""
        if readings is None:
            readings = {m: self.read_market(m) for m in range(len(self.config.markets))}
        return self.index.liquidatable(readings)

    def scan_liquidatable(self) -> list[tuple[str, int]]:
        """`liquidatable_accounts` the slow way: `is_liquidatable` of every subaccount holding a
        position. The reference the index is checked against."""
        return [(o, s) for (o, s) in self.accounts_with_positions() if self.liquidator.call("is_liquidatable", o, s)]

    def bankrupt_accounts(self, market: str | int) -> list[tuple[str, int]]:
        """Bankrupt subaccounts whose position in `market` awaits ADL, from the index."""
        return self.index.bankrupt(self.market(market))

    def active_trigger_orders(self) -> dict[int, TriggerOrder]:
        """Trigger orders placed and neither executed nor cancelled, by id, from the index."""
        return self.index.active_orders()

    def trigger_order_active(self, order_id: int) -> bool:
        return self.index.is_active_order(order_id)

    def adl_ranking(self, market: str | int, against_size: float) -> list[AdlCandidate]:
        """Profitable positions opposite to `against_size` in subaccounts that are not
        themselves bankrupt, best ADL targets first (unrealised PnL times leverage, as
        Hyperliquid and dYdX v3 rank them). Sizes and bankruptcy come from the index; PnL and
        leverage from the chain."""
        m = self.market(market)
        candidates = []
        for owner, sub in self.accounts_with_positions():
            size_wad = self.index.size(owner, sub, m)
            if size_wad == 0 or (size_wad > 0) == (against_size > 0) or self.index.is_bankrupt(owner, sub):
                continue  # a bankrupt position is never a target
            pnl = self.position_pnl(owner, m, sub)
            if pnl <= 0:
                continue
            h = self.health(owner, sub)
            leverage = h.notional / h.equity if h.equity > 0 else float("inf")
            candidates.append(AdlCandidate(owner, sub, from_wad(size_wad), pnl, leverage))
        return sorted(candidates, key=lambda c: (-c.score, c.owner, c.subaccount))


    def pnl_ranking(self, market: str | int) -> list[AdlCandidate]:
        """Profitable positions in `market` of subaccounts that are not bankrupt, most
        profitable first: the targets of ADL by PnL. Sizes from the index, PnL from the chain."""
        m = self.market(market)
        candidates = []
        for owner, sub in self.accounts_with_positions():
            size_wad = self.index.size(owner, sub, m)
            if size_wad == 0 or self.index.is_bankrupt(owner, sub):
                continue
            pnl = self.position_pnl(owner, m, sub)
            if pnl > 0:
                candidates.append(AdlCandidate(owner, sub, from_wad(size_wad), pnl, 1.0))
        return sorted(candidates, key=lambda c: (-c.pnl, c.owner, c.subaccount))


# ---------------------------------------------------------------------- the off-chain index

DAY = 86_400
Subaccount = tuple[str, int]
MARKET_STATE_FIELDS = ("oi_long", "oi_short", "sum_cost", "sum_funding_entry", "cumulative_funding", "funding_rate",
                       "premium_ema", "last_update", "deficit", "paused", "reduce_only", "skew_ref", "ref_block",
                       "skew_high", "skew_low")


@dataclass(frozen=True)
class MarketReading:
    """One market's views at one moment (1e18 fixed point), read once and shared."""

    market: int
    index_price: int
    valid: bool
    mark_price: int
    funding_rate: int  # per day, as of now
    state: tuple  # the Exchange's market_states struct, in its field order
    timestamp: int  # chain time of the reading

    def state_fields(self) -> dict[str, Any]:
        """The market state by field name (as `Protocol.market_state` gives it)."""
        return dict(zip(MARKET_STATE_FIELDS, self.state))

    @property
    def cumulative_funding(self) -> int:
        """The funding index at the market's last accrual (USD per base unit)."""
        return self.state[4]

    def pending_funding_bound(self) -> float:
        """An upper bound on how far the funding index has moved since the last accrual (USD
        per base unit): a rate per day moves it by at most |rate| x price x days, the rate
        lying between the stored one and today's; doubled for margin."""
        rate = max(abs(self.state[5]), abs(self.funding_rate)) / WAD
        return 2.0 * self.index_price / WAD * rate * max(self.timestamp - self.state[7], 0) / DAY


@dataclass(frozen=True)
class TriggerOrder:
    """An active trigger order, as placed (1e18 fixed point)."""

    owner: str
    subaccount: int
    market: int
    size: int
    trigger_price: int
    kind: int  # 0 stop-loss, 1 take-profit


@dataclass(frozen=True)
class _Screen:
    """What the index knows of a single-position subaccount's distance to liquidation: the
    Liquidator's `liquidation_price` (USD; 0: none) and its `key` in the market's sorted list
    (see `PositionIndex.liquidatable`)."""

    market: int
    long: bool
    price: float
    key: tuple[float, str, int]  # (threshold, owner, subaccount)


@dataclass
class _Holding:
    """A subaccount the index follows: its open positions and whether it is bankrupt."""

    sizes: dict[int, int] = field(default_factory=dict)  # market -> size, 1e18 base units; open ones only
    bankrupt: bool = False
    screen: _Screen | None = None  # set while its liquidation price is known and current


@dataclass
class _Funding:
    """A market's funding as the index has seen it: `travel` adds up how far the funding index
    moved between the index's looks (USD per base unit), so that |index(t1) - index(t0)| is at
    most travel(t1) - travel(t0) plus the pending accrual bounds at t0 and t1."""

    travel: float = 0.0
    last: float | None = None  # the stored funding index at the last look


class PositionIndex:
    """The facade's one index of open positions and trigger orders, kept from the chain's
    events, as a keeper's or an exchange's indexer keeps one.

    - A Trade gives a position's new size. After a Liquidator event or bad debt the account
      is read again (`accounts`, `positions`), as its sizes and bankruptcy moved without a Trade.
    - OrderPlaced, OrderExecuted and OrderCancelled give the active trigger orders.
    - `liquidatable` finds the subaccounts below maintenance margin without asking the chain
      about every account every block, and without looking at the accounts far from it:
      its cost grows with the accounts that changed or came near, not with those that hold
      a position and wait. The answer is always the chain's `is_liquidatable`; the prices
      only choose whom to ask.
    """

    def __init__(self, protocol: Protocol, margin: float = 0.01, refresh: float = 0.5) -> None:
        self.protocol = protocol
        self.margin = margin
        self.refresh = refresh  # re-read a price once funding may have moved it this share of the way to the mark
        self.cursor = 0
        self.holdings: dict[Subaccount, _Holding] = {}
        self.orders: dict[int, TriggerOrder] = {}
        self.stale: set[Subaccount] = set()  # to read again from the chain
        self.unpriced: set[Subaccount] = set()  # one position, liquidation price unknown or out of date
        self.crossed: set[Subaccount] = set()  # several positions: asked every time
        self.longs: dict[int, list[tuple[float, str, int]]] = {}  # market -> sorted screen keys
        self.shorts: dict[int, list[tuple[float, str, int]]] = {}
        self.funding: dict[int, _Funding] = {}
        self.mmf: dict[int, float] = {}  # maintenance margin fraction by market, read when first needed
        self._exchange = protocol.exchange.address
        self._liquidator = protocol.liquidator.address
        self._triggers = protocol.trigger_orders.address

    def copy(self) -> PositionIndex:
        """An independent copy (for `Protocol.snapshot`)."""
        other = copy.copy(self)
        other.holdings = {k: _Holding(dict(h.sizes), h.bankrupt, h.screen) for k, h in self.holdings.items()}
        other.orders, other.stale, other.mmf = dict(self.orders), set(self.stale), dict(self.mmf)
        other.unpriced, other.crossed = set(self.unpriced), set(self.crossed)
        other.longs = {m: list(keys) for m, keys in self.longs.items()}
        other.shorts = {m: list(keys) for m, keys in self.shorts.items()}
        other.funding = {m: _Funding(f.travel, f.last) for m, f in self.funding.items()}
        return other

    # -- following the chain --------------------------------------------------------------
    def sync(self) -> None:
        """Fold in the events logged since the last sync, then read again what they left unknown."""
        events, self.cursor = self.protocol.chain.events_since(self.cursor)
        for ev in events:
            if ev.address == self._exchange:
                self._exchange_event(ev.name, ev.args)
            elif ev.address == self._liquidator:
                self._liquidator_event(ev.args)
            elif ev.address == self._triggers:
                self._order_event(ev.name, ev.args)
        for account in sorted(self.stale):
            self._read(account)
        self.stale.clear()

    def _exchange_event(self, name: str, args: dict[str, Any]) -> None:
        owner, sub = args.get("owner"), args.get("subaccount")
        if owner is None or sub is None:
            if name in ("MarketParamsSet", "MarketAdded"):
                self.mmf.pop(args["market"], None)
                for account in list(self.holdings):
                    self._changed(account)  # the margin fraction may have moved every price
            return
        account = (owner, sub)
        if name == "Trade":
            holding = self.holdings.setdefault(account, _Holding())
            if args["new_size"]:
                holding.sizes[args["market"]] = args["new_size"]
            else:
                holding.sizes.pop(args["market"], None)
        elif name == "BadDebt":
            self.stale.add(account)
        if account in self.holdings:
            self._changed(account)  # collateral or size moved

    def _liquidator_event(self, args: dict[str, Any]) -> None:
        for owner, sub in ((args.get("owner"), args.get("subaccount")),
                           (args.get("bankrupt_owner"), args.get("bankrupt_subaccount")),
                           (args.get("target_owner"), args.get("target_subaccount"))):
            if owner is not None:
                self.stale.add((owner, sub))

    def _order_event(self, name: str, args: dict[str, Any]) -> None:
        if name == "OrderPlaced":
            self.orders[args["order_id"]] = TriggerOrder(args["owner"], args["subaccount"], args["market"],
                                                         args["size"], args["trigger_price"], args["kind"])
        elif name in ("OrderExecuted", "OrderCancelled"):
            self.orders.pop(args["order_id"], None)

    def _read(self, account: Subaccount) -> None:
        """Read a subaccount's positions and bankruptcy from the chain."""
        exchange = self.protocol.exchange
        _, markets, _, bankrupt, _ = exchange.call("accounts", *account)
        sizes = {m: exchange.call("positions", *account, m)[0] for m in markets}
        holding = self.holdings.setdefault(account, _Holding())
        holding.sizes = {m: size for m, size in sizes.items() if size}
        holding.bankrupt = bankrupt
        self._changed(account)

    def _changed(self, account: Subaccount) -> None:
        """The account's liquidation price is out of date: drop its screen, and sort it into
        the accounts to price (one position) or to ask every time (several)."""
        holding = self.holdings[account]
        screen = holding.screen
        if screen is not None:
            keys = (self.longs if screen.long else self.shorts)[screen.market]
            i = bisect_left(keys, screen.key)
            if i < len(keys) and keys[i] == screen.key:
                del keys[i]
            holding.screen = None
        self.unpriced.discard(account)
        self.crossed.discard(account)
        if len(holding.sizes) == 1:
            self.unpriced.add(account)
        elif holding.sizes:
            self.crossed.add(account)

    # -- answers ------------------------------------------------------------------------
    def accounts_with_positions(self) -> list[Subaccount]:
        self.sync()
        return sorted(account for account, holding in self.holdings.items() if holding.sizes)

    def size(self, owner: str, subaccount: int, market: int) -> int:
        self.sync()
        holding = self.holdings.get((owner, subaccount))
        return 0 if holding is None else holding.sizes.get(market, 0)

    def is_bankrupt(self, owner: str, subaccount: int) -> bool:
        self.sync()
        holding = self.holdings.get((owner, subaccount))
        return holding is not None and holding.bankrupt

    def bankrupt(self, market: int) -> list[Subaccount]:
        self.sync()
        return sorted(a for a, h in self.holdings.items() if h.bankrupt and market in h.sizes)

    def active_orders(self) -> dict[int, TriggerOrder]:
        self.sync()
        return dict(self.orders)

    def is_active_order(self, order_id: int) -> bool:
        self.sync()
        return order_id in self.orders

    def liquidatable(self, readings: Mapping[int, MarketReading]) -> list[Subaccount]:
        """Subaccounts below maintenance margin now, by the chain's `is_liquidatable`, asked only
        of those the index cannot rule out; `readings` are the markets as they stand now.

        A subaccount with several positions is asked every time. One with a single position
        is asked only when its market's mark may have reached its liquidation price P (read
        from the Liquidator after any event about the account or a change of the market's
        parameters): a long when mark <= (P + s)(1 + margin), a short when mark >= (P - s)(1 -
        margin), s bounding how far funding may have moved P since it was read (|funding
        index change| / (1 -/+ mmf)). The funding bound grows with the market's `travel`, the
        same for every account of the market, so each account's condition rearranges into a
        key of its own, fixed when P is read, against a threshold of the market's, and the
        accounts of a market sit in two sorted lists: those that may be near are an end of a
        list, found by bisection."""
        self.sync()
        for market, reading in readings.items():
            funding = self.funding.setdefault(market, _Funding())
            now = reading.cumulative_funding / WAD
            if funding.last is not None:
                funding.travel += abs(now - funding.last)
            funding.last = now
        for account in sorted(self.unpriced):
            self._price(account, readings)
        ask = set(self.crossed)
        for market, reading in readings.items():
            ask.update(self._near(market, reading, readings))
        is_liquidatable = self.protocol.liquidator.call
        return [account for account in sorted(ask) if is_liquidatable("is_liquidatable", *account)]

    def _price(self, account: Subaccount, readings: Mapping[int, MarketReading]) -> None:
        """Read a single-position subaccount's liquidation price and file it under its key."""
        self.unpriced.discard(account)
        ((market, size),) = self.holdings[account].sizes.items()
        reading = readings[market]
        price = self._liquidation_price(account, size, reading)
        spent = self.funding[market].travel - reading.pending_funding_bound()  # funding travel already behind it
        if size > 0:
            key = (price - spent / (1 - self._mmf(market)), *account)
            keys = self.longs.setdefault(market, [])
        else:  # 0: under water at any price, always asked
            key = (price + spent / (1 + self._mmf(market)) if price > 0 else -math.inf, *account)
            keys = self.shorts.setdefault(market, [])
        insort(keys, key)
        self.holdings[account].screen = _Screen(market, size > 0, price, key)

    def _liquidation_price(self, account: Subaccount, size: int, reading: MarketReading) -> float:
        """The mark (USD) at which a single-position subaccount's equity meets its maintenance
        margin, from one `health` read: both move linearly with the mark (equity by size x
        move, the margin in proportion to it), so E + s (p - m) = MM p / m gives
        p = (s m - E) / (s - MM / m); 0 when no positive mark does it. It is the Liquidator's
        `liquidation_price` at a third of the cost, and only chooses whom to ask."""
        equity, _, maintenance, _ = self.protocol.exchange.call("health", *account)
        mark, s = reading.mark_price / WAD, size / WAD
        denominator = s - maintenance / WAD / mark if mark > 0 else 0.0
        if denominator == 0:
            return math.inf if s > 0 else 0.0  # no price to go by: asked every time (a long's key is +inf, a short's -inf)
        return max((s * mark - equity / WAD) / denominator, 0.0)

    def _near(self, market: int, reading: MarketReading, readings: Mapping[int, MarketReading]) -> list[Subaccount]:
        """The market's single-position subaccounts whose liquidation price the mark may have
        reached; those that look near only because of a long funding drift are priced again."""
        mark = reading.mark_price / WAD
        mmf = self._mmf(market)
        reach = self.funding[market].travel + reading.pending_funding_bound()
        longs, shorts = self.longs.get(market, []), self.shorts.get(market, [])
        # long: mark <= (key + reach / (1 - mmf)) (1 + margin); short: mark >= (key - reach / (1 + mmf)) (1 - margin),
        # where key = price -/+ (travel - pending bound, when the price was read) / (1 -/+ mmf)
        near = longs[bisect_left(longs, (mark / (1 + self.margin) - reach / (1 - mmf),)):]
        near += shorts[: bisect_right(shorts, (mark / (1 - self.margin) + reach / (1 + mmf), "\uffff"))]
        out = []
        for _, owner, sub in near:
            account = (owner, sub)
            screen = self.holdings[account].screen
            assert screen is not None
            shift = (screen.key[0] - screen.price + reach / (1 - mmf) if screen.long
                     else screen.price - screen.key[0] + reach / (1 + mmf))  # how far funding may have moved it
            if screen.price > 0 and shift > self.refresh * abs(mark - screen.price):
                self._changed(account)  # near only by a long funding drift: read its price again
                self._price(account, readings)
                screen = self.holdings[account].screen
                assert screen is not None
                shift = reach / (1 - mmf) if screen.long else reach / (1 + mmf)
                limit = screen.key[0] + shift if screen.long else screen.key[0] - shift
                if (mark > limit * (1 + self.margin)) if screen.long else (mark < limit * (1 - self.margin)):
                    continue
            out.append(account)
        return out

    def _mmf(self, market: int) -> float:
        if market not in self.mmf:
            self.mmf[market] = self.protocol.exchange.call("markets", market)[2] / WAD
        return self.mmf[market]
