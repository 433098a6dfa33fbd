# pragma version ~=0.4.3
# pragma nonreentrancy on
# pragma optimize codesize
"""
@title Exchange
@license MIT
@notice Perpetual futures markets against the Vault: cross-margined subaccounts,
        skew-priced trades, continuous funding and three mark-price modes (DESIGN §4).
        Liquidation and ADL are decided by the Liquidator, which this contract trusts
        through narrow hooks (`liquidation_fill`, `declare_bankrupt`, `deleverage_fill`);
        EIP-170 does not fit both in one contract.
@dev Units: prices, sizes, rates and fractions are 1e18 fixed point; collateral is held
     as 1e18 USD on the books and moves as 6-decimal tokens, converted with PRECISION.
     Every realised amount is rounded to whole token units in the protocol's favour,
     so token balances match the books exactly (DESIGN §5.1).
     Every collateral change settles against the Vault. The Exchange holds tokens for
     positive collateral only; a subaccount's negative collateral (a realised loss that
     its unrealised gains elsewhere still cover, or bad debt) is owed to the Vault and
     counted as `vault_receivable`, so no trader's loss is ever paid with another
     trader's tokens. What the InsuranceFund pays for bad debt reaches the Vault the same way.
     A profit the Vault cannot pay in tokens at once is credited all the same and counted
     as `vault_debt`, so a close never fails for lack of liquidity; withdrawals collect the
     debt first. Token balance == positive collateral - vault_debt.
     While a feed is invalid, whatever lets value leave (a reduce-only fill, the margin of a
     withdrawal) uses the end of the oracle's disputed band that is worse for the trader.
     The `premium` mark uses the skew as it stood when the block began, so no trade can
     move it inside a block; a trigger order's fill may not be worse than the quote at
     that skew, so no keeper can sandwich it inside a block.
     Funding rates are stored per day (1e18 == 100% a day). The `premium` model computes
     DESIGN's per-8h rate and multiplies it by 3. The premium EMA uses the continuous
     approximation alpha = dt / (dt + tau), tau = half_life / ln 2.
"""

from ethereum.ercs import IERC20
from interfaces import IOracle
from interfaces import IPayer
import modules.constants as c
import modules.fixed_math as fm
import modules.bounds as bounds
import modules.perp_math as pm
import modules.ownable as ownable

initializes: ownable
exports: (ownable.owner, ownable.transfer_ownership)

interface IReserve:
    def reserve_factor() -> uint256: view

interface ILens:
    def check_params(p: MarketParams, oracle: IOracle) -> bool: view
    def check_limits(limits: MarketLimits, settlement_price: uint256) -> bool: view

# ---------------------------------------------------------------- CONSTANTS
MAX_LENS_INITCODE: constant(uint256) = 24_576  # bytes of ExchangeLens's init code (EIP-170 bounds its runtime)
MAX_POSITIONS: constant(uint256) = 8  # positions per subaccount (IExchangeCore's Account says 8 too)
# Bounds of market parameters (amounts and sizes: modules/bounds.vy), far beyond any real use.
MAX_PARAM: constant(uint256) = 10**36   # skew scale, funding caps, premium half-life

FUNDING_VELOCITY: constant(uint256) = 1  # funding model ids; 0 is perp_math.FUNDING_PREMIUM
MARK_ORACLE: constant(uint256) = 0      # mark price modes
MARK_PREMIUM: constant(uint256) = 1
MARK_MEDIAN: constant(uint256) = 2

# ---------------------------------------------------------------- STRUCTS
flag Role:
    GUARDIAN
    ORACLE
    TRIGGER_ORDERS
    LIQUIDATOR

struct MarketParams:
    asset: uint256                 # oracle asset id
    imf: uint256                   # initial margin fraction, 1e18 == 100%
    mmf: uint256                   # maintenance margin fraction, 1e18 == 100%
    taker_fee: uint256             # fraction of notional, 1e18 == 100%
    insurance_fee_share: uint256   # share of the taker fee to the InsuranceFund, 1e18 == 100%
    skew_scale: uint256            # base units, 1e18; premium = skew / skew_scale
    max_oi: uint256                # per side, base units 1e18
    funding_model: uint256         # 0 premium (dYdX), 1 velocity (Synthetix)
    max_funding_rate: uint256      # per day, 1e18 == 100%; cap of the velocity model
    max_funding_velocity: uint256  # per day, per day, at full skew, 1e18
    mark_mode: uint256             # 0 oracle, 1 premium, 2 median
    premium_half_life: uint256     # seconds, median mark's premium EMA
    twap_window: uint256           # seconds, median mark's oracle TWAP
    allow_unrealized_withdrawal: bool  # withdrawals may take unrealised PnL out

struct MarketLimits:                # issue 11's defences; every 0 is off
    oi_imf_lower: uint256          # USD 1e18: open interest (larger side, at index) where the IMF starts rising (dYdX v4)
    oi_imf_upper: uint256          # USD 1e18: where the IMF reaches 100%; 0: it never rises
    max_oi_usd: uint256            # USD 1e18: a side's open interest at most this (GMX v2 maxOpenInterest); 0: no cap
    max_oi_vault_factor: uint256   # 1e18: a side's open interest at most this x the Vault's token value; 0: no cap
    max_leverage: uint256          # 1e18: each position's initial margin at least notional / this (Hyperliquid); 0: no cap
    settlement_price: uint256      # USD 1e18: non-zero delists the market for good, priced at it; 0: listed

struct MarketState:
    oi_long: uint256               # long open interest, base units 1e18
    oi_short: uint256              # short open interest, base units 1e18
    sum_cost: int256               # sum of positions' cost basis, USD 1e18
    sum_funding_entry: int256      # sum of size * funding_entry / 1e18, USD 1e18
    cumulative_funding: int256     # USD 1e18 per base unit, grows while longs pay
    funding_rate: int256           # per day, 1e18 == 100%; > 0: longs pay
    premium_ema: int256            # EMA of skew / skew_scale, 1e18
    last_update: uint256           # unix seconds of the last accrual
    deficit: uint256               # uncovered bad debt awaiting ADL, USD 1e18
    paused: bool                   # no trades (liquidations go on)
    reduce_only: bool              # no trade may add risk
    skew_ref: int256               # the skew when the current block began, base units 1e18
    ref_block: uint256             # the block number of skew_ref
    skew_high: int256              # the highest skew in block ref_block so far, base units 1e18
    skew_low: int256               # the lowest skew in block ref_block so far, base units 1e18

struct Position:
    size: int256                   # base units 1e18; > 0 long
    cost: int256                   # size * entry price, USD 1e18 (signed like size)
    funding_entry: int256          # cumulative_funding when last settled

struct Account:
    collateral: int256             # USD 1e18; negative only while cross-margined PnL covers it
    markets: DynArray[uint256, MAX_POSITIONS]  # ids of the markets it holds a position in
    isolated: bool                 # one position at most
    bankrupt: bool                 # its last position waits for ADL or discharge
    deficit: uint256               # this account's share of its market's deficit, USD 1e18

struct Health:                     # all USD 1e18, at mark
    equity: int256                 # collateral + unrealised PnL - funding owed
    initial_margin: uint256
    maintenance_margin: uint256
    notional: uint256              # sum of |size| * mark

# ---------------------------------------------------------------- IMMUTABLES
COLLATERAL: public(immutable(IERC20))      # the collateral token (6 decimals for USDC)
PRECISION: public(immutable(uint256))      # 10**(18 - token decimals): USD 1e18 per token unit
VAULT: public(immutable(IPayer))           # the LP pool, every trade's counterparty
INSURANCE_FUND: public(immutable(IPayer))  # pays bad debt and backs the keepers' minimum fee
LENS: public(immutable(ILens))             # ExchangeLens: the views off-chain readers use, the parameter rules

# ---------------------------------------------------------------- STORAGE
guardian: public(address)          # may pause a market or make it reduce-only
oracle: public(IOracle)            # the price feed
trigger_orders: public(address)    # the TriggerOrders contract: trade_for, charge_fee
liquidator: public(address)        # the Liquidator: liquidation_fill, declare_bankrupt, deleverage_fill, discharge
market_count: public(uint256)      # markets listed; ids are 0 .. market_count - 1
vault_receivable: public(uint256)  # sum of negative collateral, USD 1e18: owed to the Vault
vault_debt: public(uint256)        # profit credited that the Vault has not paid yet, USD 1e18
markets: public(HashMap[uint256, MarketParams])      # market id -> parameters (units: MarketParams)
market_states: public(HashMap[uint256, MarketState])  # market id -> state (units: MarketState)
accounts: public(HashMap[address, HashMap[uint256, Account]])  # owner -> subaccount -> account
positions: public(HashMap[address, HashMap[uint256, HashMap[uint256, Position]]])  # owner -> subaccount -> market id
market_limits: public(HashMap[uint256, MarketLimits])  # market id -> limits and settlement price (units: MarketLimits)

# ---------------------------------------------------------------- EVENTS
event MarketAdded:
    market: indexed(uint256)
    asset: uint256

event MarketParamsSet:
    market: indexed(uint256)
    params: MarketParams

event MarketLimitsSet:
    market: indexed(uint256)
    limits: MarketLimits

event MarketStatusSet:
    market: indexed(uint256)
    paused: bool
    reduce_only: bool
    sender: address

event RoleSet:
    role: Role
    account: indexed(address)

event IsolationSet:
    owner: indexed(address)
    subaccount: indexed(uint256)
    isolated: bool

event Deposit:
    owner: indexed(address)
    subaccount: indexed(uint256)
    amount: uint256              # tokens (6 decimals)

event Withdraw:
    owner: indexed(address)
    subaccount: indexed(uint256)
    amount: uint256              # tokens (6 decimals)

event FundingAccrued:
    market: indexed(uint256)
    index_price: uint256         # USD 1e18
    cumulative_funding: int256   # USD per base unit 1e18
    funding_rate: int256         # per day, 1e18 == 100%
    premium_ema: int256          # 1e18

event Trade:
    owner: indexed(address)
    subaccount: indexed(uint256)
    market: indexed(uint256)
    size_delta: int256           # base units 1e18; > 0 bought
    fill_price: uint256          # USD 1e18
    fee: uint256                 # tokens (6 decimals)
    realized_pnl: int256         # USD 1e18
    funding_paid: int256         # USD 1e18; < 0: received
    new_size: int256             # base units 1e18

event BadDebt:
    owner: indexed(address)
    subaccount: indexed(uint256)
    market: indexed(uint256)
    amount: uint256          # the shortfall, USD 1e18: amount == insurance_paid + deficit + written_off
    insurance_paid: uint256  # what the InsuranceFund paid
    deficit: uint256         # left to the market's deficit, for ADL (a bankruptcy)
    written_off: uint256     # what the fund could not pay with no position left for ADL: the Vault's loss

event FeeCharged:
    owner: indexed(address)
    subaccount: indexed(uint256)
    receiver: indexed(address)
    amount: uint256              # tokens (6 decimals) paid

event Paid:
    receiver: indexed(address)  # a keeper or the fund, paid a fee out of a trader's own tokens
    amount: uint256             # tokens (6 decimals)


@deploy
def __init__(collateral: IERC20, collateral_decimals: uint256, oracle: IOracle, vault: IPayer, insurance_fund: IPayer,
             lens_initcode: Bytes[MAX_LENS_INITCODE]):
    """
    @notice The deployer is the owner and the first guardian. Creates the Exchange's lens
            (ExchangeLens) from its init code, bound to this Exchange: no setup transaction.
    @param collateral The collateral token.
    @param collateral_decimals Its decimals (6 for USDC), at most 18.
    @param oracle The price feed.
    @param vault The LP pool that takes the other side.
    @param insurance_fund The fund that pays bad debt.
    @param lens_initcode ExchangeLens's init code (its compiled bytecode).
    """
    COLLATERAL = collateral
    PRECISION = 10 ** (18 - collateral_decimals)
    VAULT = vault
    INSURANCE_FUND = insurance_fund
    LENS = ILens(raw_create(lens_initcode))
    self.oracle = oracle
    ownable.__init__()
    self.guardian = msg.sender


# ================================================================ ADMIN
@external
def add_market(params: MarketParams) -> uint256:
    """
    @notice List a market. Only the owner.
    @param params Its parameters: fractions 1e18 == 100%, sizes base units 1e18, funding
           rates per day 1e18, durations seconds (see MarketParams).
    @return The new market's id.
    """
    ownable._check_owner()
    market: uint256 = self.market_count
    assert market < c.MAX_MARKETS, "exchange: too many markets"
    self._check_params(params)
    self.markets[market] = params
    self.market_states[market].last_update = block.timestamp
    self.market_count = market + 1
    log MarketAdded(market=market, asset=params.asset)
    log MarketParamsSet(market=market, params=params)
    return market


@external
def set_market_params(market: uint256, params: MarketParams):
    """
    @notice Change a market's parameters, after accruing funding at the old ones. Only the owner.
    @param market The market id.
    @param params The new parameters, in the units `add_market` takes.
    """
    ownable._check_owner()
    self._check_market(market)
    self._check_params(params)
    self._accrue(market)
    self.markets[market] = params
    log MarketParamsSet(market=market, params=params)


@external
def set_market_limits(market: uint256, limits: MarketLimits):
    """
    @notice Set a market's open-interest and leverage limits, or delist it (issue 11's
            defences). A settlement price delists the market for good (Hyperliquid's JELLY):
            it turns reduce-only, its price is the settlement price from then on, for margin,
            liquidation and every close, and anyone may `settle` each position at it.
            Only the owner.
    @param market The market id.
    @param limits USD 1e18 caps, the Vault factor and the leverage 1e18, the settlement price
           USD 1e18 (see MarketLimits); 0 is off. A settlement price, once set, stays.
    """
    ownable._check_owner()
    self._check_market(market)
    settled: uint256 = self.market_limits[market].settlement_price
    assert staticcall LENS.check_limits(limits, settled)
    if settled == 0 and limits.settlement_price != 0:
        self._accrue(market)  # funding up to now at the oracle's price
        self.market_states[market].reduce_only = True
    self.market_limits[market] = limits
    log MarketLimitsSet(market=market, limits=limits)


@external
def set_market_status(market: uint256, paused: bool, reduce_only: bool):
    """
    @notice Pause a market, or make it reduce-only. The guardian or the owner.
    @param market The market id.
    @param paused True stops every trade; liquidations go on.
    @param reduce_only True refuses every trade that adds risk.
    """
    assert msg.sender == self.guardian or msg.sender == ownable.owner, "exchange: caller is not the guardian"
    self._check_market(market)
    assert reduce_only or self.market_limits[market].settlement_price == 0, "exchange: market delisted"
    self.market_states[market].paused = paused
    self.market_states[market].reduce_only = reduce_only
    log MarketStatusSet(market=market, paused=paused, reduce_only=reduce_only, sender=msg.sender)


@external
def set_role(role: Role, account: address):
    """
    @notice Name the guardian, the oracle, the TriggerOrders contract or the Liquidator.
            Only the owner (whose own role moves with `transfer_ownership`).
    @param role One role (a flag with one bit set: 1 guardian, 2 oracle, 4 trigger orders,
           8 liquidator).
    @param account Who plays it; not the zero address.
    """
    ownable._check_owner()
    assert account != empty(address), "exchange: zero address"
    if role == Role.GUARDIAN:
        self.guardian = account
    elif role == Role.ORACLE:
        self.oracle = IOracle(account)
    elif role == Role.TRIGGER_ORDERS:
        self.trigger_orders = account
    elif role == Role.LIQUIDATOR:
        self.liquidator = account
    else:
        raise "exchange: unknown role"
    log RoleSet(role=role, account=account)


# ================================================================ ACCOUNTS
@external
def set_isolated(subaccount: uint256, isolated: bool):
    """
    @notice Make a subaccount isolated (one position at most) or cross-margined.
            Only while it holds no position.
    @param subaccount The caller's subaccount id.
    @param isolated True for one position at most, False for cross margin.
    """
    assert len(self.accounts[msg.sender][subaccount].markets) == 0, "exchange: close positions first"
    self.accounts[msg.sender][subaccount].isolated = isolated
    log IsolationSet(owner=msg.sender, subaccount=subaccount, isolated=isolated)


@external
def deposit(subaccount: uint256, amount: uint256):
    """
    @notice Deposit `amount` collateral tokens (6 decimals) into a subaccount of the caller.
    @param subaccount The caller's subaccount id; not bankrupt.
    @param amount Tokens (6 decimals), non-zero, at most bounds.MAX_AMOUNT.
    """
    self._amount_wad(amount)
    assert not self.accounts[msg.sender][subaccount].bankrupt, "exchange: account bankrupt"
    assert extcall COLLATERAL.transferFrom(msg.sender, self, amount, default_return_value=True), "exchange: transfer failed"
    self._credit(msg.sender, subaccount, amount)
    log Deposit(owner=msg.sender, subaccount=subaccount, amount=amount)


@external
def withdraw(subaccount: uint256, amount: uint256):
    """
    @notice Withdraw `amount` collateral tokens (6 decimals). The subaccount must stay at or
            above initial margin, and may not take unrealised PnL out unless every market it
            holds allows it.
    @dev The margin is checked at the end of each feed's disputed band that is worse for the
         subaccount (the last accepted price while the feed is valid).
    @param subaccount The caller's subaccount id; not bankrupt.
    @param amount Tokens (6 decimals), non-zero, at most bounds.MAX_AMOUNT.
    """
    amount_wad: int256 = self._amount_wad(amount)
    acct: Account = self.accounts[msg.sender][subaccount]
    assert not acct.bankrupt, "exchange: account bankrupt"
    # unrealised PnL may leave only if the subaccount holds positions and all their markets allow it
    may_take_pnl: bool = len(acct.markets) > 0
    for m: uint256 in acct.markets:
        may_take_pnl = may_take_pnl and self.markets[m].allow_unrealized_withdrawal
    if not may_take_pnl:
        assert amount_wad <= acct.collateral, "exchange: withdrawal exceeds collateral"
    held: uint256 = convert(-self._book(msg.sender, subaccount, -amount_wad), uint256) // PRECISION
    h: Health = self._health(msg.sender, subaccount, True)
    assert h.equity >= convert(h.initial_margin, int256), "exchange: below initial margin"
    self._pay_out(msg.sender, held)
    if amount > held:
        # beyond positive collateral (only where unrealised PnL may leave): the Vault lends it
        assert self._pay(VAULT, msg.sender, amount - held) == amount - held, "vault: insufficient liquidity"
    log Withdraw(owner=msg.sender, subaccount=subaccount, amount=amount)


# ================================================================ TRADING
@external
def trade(subaccount: uint256, market: uint256, size_delta: int256, limit_price: uint256) -> uint256:
    """
    @notice Buy (size_delta > 0) or sell base units against the Vault at the skew-adjusted price.
    @param subaccount The caller's subaccount id.
    @param market The market id.
    @param size_delta Base units, 1e18.
    @param limit_price Worst acceptable fill, 1e18 USD: a buy reverts above it, a sell below.
    @return The fill price, 1e18 USD.
    """
    return self._trade(msg.sender, subaccount, market, size_delta, limit_price, False)


@external
def trade_for(owner: address, subaccount: uint256, market: uint256, size_delta: int256, limit_price: uint256) -> uint256:
    """
    @notice A reduce-only trade on behalf of `owner`, by the TriggerOrders contract.
    @dev It fills no worse than it would have at the skew the block began with.
    @param owner The subaccount's owner.
    @param subaccount The subaccount.
    @param market The market id.
    @param size_delta Base units 1e18; > 0 buys.
    @param limit_price Worst acceptable fill, 1e18 USD: a buy reverts above it, a sell below.
    @return The fill price, 1e18 USD.
    """
    assert msg.sender == self.trigger_orders, "exchange: caller is not trigger orders"
    return self._trade(owner, subaccount, market, size_delta, limit_price, True)


@external
def settle(owner: address, subaccount: uint256, market: uint256):
    """
    @notice Close a position in a delisted market at its settlement price, with no fee.
            Anyone (a keeper); not a bankrupt subaccount's, which ADL clears.
    @param owner The subaccount's owner.
    @param subaccount The subaccount.
    @param market The delisted market.
    """
    price: uint256 = self.market_limits[market].settlement_price
    assert price > 0, "exchange: market not delisted"
    self._check_solvent(owner, subaccount)
    size: int256 = self.positions[owner][subaccount][market].size
    assert size != 0, "exchange: no position"
    self._accrue(market)
    self._fill(owner, subaccount, market, -size, price, 0, True)
    self._cover_if_flat(owner, subaccount, market)


@external
def charge_fee(owner: address, subaccount: uint256, receiver: address, amount: uint256) -> uint256:
    """
    @notice Pay a keeper fee of up to `amount` tokens (6 decimals) out of a subaccount's
            equity (collateral may go negative where unrealised PnL covers it): no more than
            the equity there is. Only the TriggerOrders contract.
    @param owner The subaccount's owner.
    @param subaccount The subaccount.
    @param receiver Who is paid (the keeper).
    @param amount The fee asked, tokens (6 decimals).
    @return The fee paid, tokens.
    """
    assert msg.sender == self.trigger_orders, "exchange: caller is not trigger orders"
    equity: int256 = self._health(owner, subaccount, True).equity
    paid: uint256 = min(amount, convert(max(equity, 0), uint256) // PRECISION)
    paid = self._charge(owner, subaccount, paid, receiver)
    log FeeCharged(owner=owner, subaccount=subaccount, receiver=receiver, amount=paid)
    return paid


@external
def accrue(market: uint256) -> (uint256, bool):
    """
    @notice Bring a market's funding, premium EMA and mark up to now. Anyone.
    @param market The market id.
    @return (index price 1e18 USD, feed valid)
    """
    self._check_market(market)
    index: uint256 = 0
    low: uint256 = 0
    high: uint256 = 0
    valid: bool = False
    index, low, high, valid = self._accrue(market)
    return index, valid


# ================================================================ HOOKS: Liquidator, TriggerOrders
@external
def liquidation_fill(owner: address, subaccount: uint256, market: uint256, size_delta: int256, price: uint256,
                     keeper: address, keeper_fee: uint256, insurance_fee: uint256,
                     min_keeper_fee: uint256) -> (uint256, uint256):
    """
    @notice Close `size_delta` of a position at `price` against the Vault and take the
            liquidation fee to the keeper and the fund. If that was the last position and
            collateral is negative, the InsuranceFund pays the shortfall; then it tops the
            keeper's fee up to `min_keeper_fee`, as far as it can. Only the Liquidator,
            which checks eligibility and sizes.
    @param owner The subaccount's owner.
    @param subaccount The subaccount.
    @param market The market.
    @param size_delta Base units 1e18 that close the position.
    @param price The fill price, 1e18 USD.
    @param keeper Who is paid the keeper's share.
    @param keeper_fee The keeper's share of the fee, tokens (6 decimals).
    @param insurance_fee The fund's share, tokens.
    @param min_keeper_fee The least a keeper is paid, tokens; the fund backs it.
    @return (keeper fee paid, insurance fee paid), tokens.
    """
    self._only_liquidator()
    self._check_solvent(owner, subaccount)
    self._fill(owner, subaccount, market, size_delta, price, 0, False)
    collateral: int256 = self.accounts[owner][subaccount].collateral
    last: bool = len(self.accounts[owner][subaccount].markets) == 0
    fee: uint256 = keeper_fee + insurance_fee
    paid: uint256 = fee
    if last:
        # the last close: the fee takes no more than what is left
        paid = min(fee, convert(max(collateral, 0), uint256) // PRECISION)
    to_keeper: uint256 = keeper_fee if paid == fee else paid * keeper_fee // fee
    to_fund: uint256 = self._charge(owner, subaccount, paid - to_keeper, INSURANCE_FUND.address)
    to_keeper = self._charge(owner, subaccount, to_keeper, keeper)
    self._cover_if_flat(owner, subaccount, market)
    if to_keeper < min_keeper_fee:
        to_keeper += self._pay(INSURANCE_FUND, keeper, min_keeper_fee - to_keeper)
    return to_keeper, to_fund


@external
def declare_bankrupt(owner: address, subaccount: uint256, market: uint256, shortfall: uint256):
    """
    @notice The fund cannot cover a subaccount's shortfall (tokens, 6 decimals): it pays what it
            has, the rest becomes the market's deficit, and the subaccount's last position stays
            open for ADL. Only the Liquidator.
    @param owner The subaccount's owner.
    @param subaccount The subaccount.
    @param market The market of its last position.
    @param shortfall What its collateral lacks, tokens (6 decimals).
    """
    self._only_liquidator()
    self._check_solvent(owner, subaccount)
    paid: uint256 = self._pay(INSURANCE_FUND, self, shortfall)
    self._credit(owner, subaccount, paid)
    deficit: uint256 = (shortfall - paid) * PRECISION
    self.accounts[owner][subaccount].bankrupt = True
    self.accounts[owner][subaccount].deficit = deficit
    self.market_states[market].deficit += deficit
    log BadDebt(owner=owner, subaccount=subaccount, market=market, amount=shortfall * PRECISION,
                insurance_paid=paid * PRECISION, deficit=deficit, written_off=0)


@external
def deleverage_fill(bankrupt_owner: address, bankrupt_subaccount: uint256, target_owner: address,
                    target_subaccount: uint256, market: uint256, size_delta: int256, price: uint256,
                    deficit_covered: uint256):
    """
    @notice Close `size_delta` of a bankrupt position and the opposite of a target's, both at
            `price`, and take `deficit_covered` off the deficits. Only the Liquidator.
    @param bankrupt_owner The bankrupt subaccount's owner.
    @param bankrupt_subaccount The bankrupt subaccount.
    @param target_owner The owner of the profitable opposite position.
    @param target_subaccount The target subaccount.
    @param market The market id.
    @param size_delta Base units 1e18 the bankrupt position trades; the target trades the opposite.
    @param price The bankruptcy price, 1e18 USD.
    @param deficit_covered USD 1e18 taken off the bankrupt's and the market's deficit.
    """
    self._only_liquidator()
    assert self.accounts[bankrupt_owner][bankrupt_subaccount].bankrupt, "exchange: not bankrupt"
    self._fill(bankrupt_owner, bankrupt_subaccount, market, size_delta, price, 0, False)
    self._fill(target_owner, target_subaccount, market, -size_delta, price, 0, False)
    self.accounts[bankrupt_owner][bankrupt_subaccount].deficit -= deficit_covered
    self.market_states[market].deficit -= deficit_covered
    if self.positions[bankrupt_owner][bankrupt_subaccount][market].size == 0:
        self.accounts[bankrupt_owner][bankrupt_subaccount].bankrupt = False
    # either side left flat under water (a bankruptcy price clamped at zero; the target's
    # rounding) is bad debt, recorded as any other
    self._cover_if_flat(bankrupt_owner, bankrupt_subaccount, market)
    self._cover_if_flat(target_owner, target_subaccount, market)


@external
def discharge(owner: address, subaccount: uint256, market: uint256):
    """
    @notice A bankrupt subaccount whose equity has come back to zero or more leaves
            bankruptcy: its share of the market's deficit is gone. Only the Liquidator,
            which checks the equity.
    @param owner The subaccount's owner.
    @param subaccount The subaccount.
    @param market The market of its position.
    """
    self._only_liquidator()
    assert self.accounts[owner][subaccount].bankrupt, "exchange: not bankrupt"
    self.market_states[market].deficit -= self.accounts[owner][subaccount].deficit
    self.accounts[owner][subaccount].deficit = 0
    self.accounts[owner][subaccount].bankrupt = False


# ================================================================ VIEWS
@view
@external
def health(owner: address, subaccount: uint256) -> Health:
    """
    @notice Equity, initial and maintenance margin and notional of a subaccount, USD 1e18,
            at the mark of the last accepted prices.
    @param owner The subaccount's owner.
    @param subaccount The subaccount.
    @return (equity, initial margin, maintenance margin, notional), USD 1e18.
    """
    return self._health(owner, subaccount, False)






@view
@external
def index_price(market: uint256) -> (uint256, bool):
    """
    @notice The oracle price of the market's asset and whether the feed is valid.
    @param market The market id.
    @return (last accepted price 1e18 USD, feed valid)
    """
    self._check_market(market)
    return self._index(market)


@view
@external
def mark_price(market: uint256) -> uint256:
    """
    @notice The mark price in the market's mode, USD 1e18.
    @param market The market id.
    @return USD 1e18.
    """
    self._check_market(market)
    return self._mark_now(market)






@view
@external
def open_interest_notional() -> uint256:
    """
    @notice Long plus short open interest at index prices, USD 1e18, over all markets.
    @return USD 1e18.
    """
    return self._open_interest_notional()


# ================================================================ INTERNAL: open interest
@view
@internal
def _open_interest_notional() -> uint256:
    total: uint256 = 0
    for m: uint256 in range(c.MAX_MARKETS):
        if m >= self.market_count:
            break
        index: uint256 = 0
        valid: bool = False
        index, valid = self._index(m)
        total += (self.market_states[m].oi_long + self.market_states[m].oi_short) * index // c.WAD
    return total


# ================================================================ INTERNAL: checks
@view
@internal
def _check_market(market: uint256):
    assert market < self.market_count, "exchange: unknown market"


@view
@internal
def _only_liquidator():
    assert msg.sender == self.liquidator, "exchange: caller is not the liquidator"


@view
@internal
def _check_solvent(owner: address, subaccount: uint256):
    """Liquidation goes on while a market is paused: a pause stops users, not the risk engine."""
    assert not self.accounts[owner][subaccount].bankrupt, "exchange: account bankrupt"


@pure
@internal
def _check_size(size_delta: int256):
    assert size_delta >= -bounds.MAX_SIZE and size_delta <= bounds.MAX_SIZE, "exchange: size too large"


@view
@internal
def _amount_wad(amount: uint256) -> int256:
    """A deposit or withdrawal (tokens, 6 decimals), non-zero and bounded, as USD 1e18."""
    assert amount > 0, "exchange: zero amount"
    assert amount <= bounds.MAX_AMOUNT, "exchange: amount too large"
    return convert(amount * PRECISION, int256)


@view
@internal
def _check_params(p: MarketParams):
    """The lens holds the rules (and the Exchange's reasons): it reverts on bad parameters."""
    assert staticcall LENS.check_params(p, self.oracle)


# ================================================================ INTERNAL: prices and funding
@view
@internal
def _band(market: uint256) -> (uint256, uint256, uint256, bool):
    """(last accepted price, disputed band low, band high, feed valid): see Oracle.price_band;
    a delisted market's settlement price in all three."""
    settled: uint256 = self.market_limits[market].settlement_price
    if settled != 0:
        return settled, settled, settled, True
    return staticcall self.oracle.price_band(self.markets[market].asset)


@view
@internal
def _index(market: uint256) -> (uint256, bool):
    price: uint256 = 0
    low: uint256 = 0
    high: uint256 = 0
    valid: bool = False
    price, low, high, valid = self._band(market)
    return price, valid


@view
@internal
def _premium(market: uint256, skew: int256) -> int256:
    """skew / skew_scale, clamped to [-1, 1]."""
    return fm.clamp(skew * c.IWAD // convert(self.markets[market].skew_scale, int256), -c.IWAD, c.IWAD)


@view
@internal
def _skew_ref(market: uint256) -> int256:
    """The skew when the current block began: stored at the block's first touch, or the
    skew now if nothing has touched the market in this block."""
    if self.market_states[market].ref_block == block.number:
        return self.market_states[market].skew_ref
    return self._skew(market)


@view
@internal
def _skew(market: uint256) -> int256:
    """Long minus short open interest, base units."""
    return convert(self.market_states[market].oi_long, int256) - convert(self.market_states[market].oi_short, int256)


@view
@internal
def _pending(market: uint256, index: uint256) -> (int256, int256, int256):
    """
    @return (cumulative funding, funding rate per day, premium EMA) as of now.
    """
    st: MarketState = self.market_states[market]
    p: MarketParams = self.markets[market]
    return pm.pending_funding(p.funding_model, p.imf, p.mmf, p.max_funding_rate, p.max_funding_velocity,
                              p.premium_half_life, st.cumulative_funding, st.funding_rate, st.premium_ema,
                              self._premium(market, self._skew(market)),
                              convert(block.timestamp - st.last_update, int256), index)


@internal
def _touch(market: uint256):
    """At a block's first touch of the market, its skew becomes the block's reference and
    the range the skew has covered in the block."""
    if self.market_states[market].ref_block != block.number:
        skew: int256 = self._skew(market)
        self.market_states[market].skew_ref = skew
        self.market_states[market].skew_high = skew
        self.market_states[market].skew_low = skew
        self.market_states[market].ref_block = block.number


@internal
def _accrue(market: uint256) -> (uint256, uint256, uint256, bool):
    """
    @notice Take the block's reference skew at its first touch, then write funding and the
            premium EMA up to now.
    @return (last accepted index price, disputed band low, band high, feed valid)
    """
    index: uint256 = 0
    low: uint256 = 0
    high: uint256 = 0
    valid: bool = False
    index, low, high, valid = self._band(market)
    self._touch(market)
    if self.market_states[market].last_update == block.timestamp:
        return index, low, high, valid
    cum: int256 = 0
    rate: int256 = 0
    ema: int256 = 0
    cum, rate, ema = self._pending(market, index)
    self.market_states[market].cumulative_funding = cum
    self.market_states[market].funding_rate = rate
    self.market_states[market].premium_ema = ema
    self.market_states[market].last_update = block.timestamp
    log FundingAccrued(market=market, index_price=index, cumulative_funding=cum, funding_rate=rate, premium_ema=ema)
    return index, low, high, valid


@view
@internal
def _mark(market: uint256, index: uint256, ema: int256) -> uint256:
    mode: uint256 = self.markets[market].mark_mode
    if mode == MARK_ORACLE or self.market_limits[market].settlement_price != 0:
        return index
    if mode == MARK_PREMIUM:
        return convert(fm.mul_down(convert(index, int256), c.IWAD + self._premium(market, self._skew_ref(market))), uint256)
    ema_price: uint256 = convert(fm.mul_down(convert(index, int256), c.IWAD + fm.clamp(ema, -c.IWAD, c.IWAD)), uint256)
    twap: uint256 = staticcall self.oracle.twap(self.markets[market].asset, self.markets[market].twap_window)
    if twap == 0:
        twap = index
    return fm.median3(index, ema_price, twap)


@view
@internal
def _mark_now(market: uint256) -> uint256:
    index: uint256 = 0
    valid: bool = False
    index, valid = self._index(market)
    cum: int256 = 0
    rate: int256 = 0
    ema: int256 = 0
    cum, rate, ema = self._pending(market, index)
    return self._mark(market, index, ema)


@view
@internal
def _fill_price(market: uint256, index: uint256, size_delta: int256) -> uint256:
    """The SIP-279 fill of `size_delta` at `index` and the current skew."""
    return pm.fill_price(index, self._skew(market), self.markets[market].skew_scale, size_delta)


@pure
@internal
def _funding_owed(pos: Position, cumulative: int256) -> int256:
    """Funding a position owes (rounded up), USD 1e18."""
    return fm.mul_up(pos.size, cumulative - pos.funding_entry)


# ================================================================ INTERNAL: margin
@view
@internal
def _health(owner: address, subaccount: uint256, worst: bool) -> Health:
    """
    @notice Equity and margin at mark. `worst`: each position priced at the end of its
            feed's disputed band that is worse for it (the same as the last accepted price
            while the feed is valid): what a user's own action is checked at.
    """
    h: Health = Health(equity=self.accounts[owner][subaccount].collateral, initial_margin=0, maintenance_margin=0, notional=0)
    for m: uint256 in self.accounts[owner][subaccount].markets:
        pos: Position = self.positions[owner][subaccount][m]
        index: uint256 = 0
        low: uint256 = 0
        high: uint256 = 0
        valid: bool = False
        index, low, high, valid = self._band(m)
        if worst:
            index = low if pos.size > 0 else high
        cum: int256 = 0
        rate: int256 = 0
        ema: int256 = 0
        cum, rate, ema = self._pending(m, index)
        mark: uint256 = self._mark(m, index, ema)
        h.equity += fm.mul_down(pos.size, convert(mark, int256)) - pos.cost - self._funding_owed(pos, cum)
        notional: uint256 = convert(abs(pos.size), uint256) * mark // c.WAD
        h.notional += notional
        oi: uint256 = max(self.market_states[m].oi_long, self.market_states[m].oi_short) * index // c.WAD
        imf: uint256 = pm.initial_margin_fraction(self.markets[m].imf, self.market_limits[m].max_leverage,
                                                  self.market_limits[m].oi_imf_lower, self.market_limits[m].oi_imf_upper, oi)
        h.initial_margin += (notional * imf + c.WAD - 1) // c.WAD
        h.maintenance_margin += (notional * self.markets[m].mmf + c.WAD - 1) // c.WAD
    return h


# ================================================================ INTERNAL: position changes
@internal
def _trade(owner: address, subaccount: uint256, market: uint256, size_delta: int256, limit_price: uint256, reduce_only: bool) -> uint256:
    self._check_market(market)
    assert size_delta != 0, "exchange: zero size"
    self._check_size(size_delta)
    assert not self.market_states[market].paused, "exchange: market paused"
    assert not self.accounts[owner][subaccount].bankrupt, "exchange: account bankrupt"
    index: uint256 = 0
    low: uint256 = 0
    high: uint256 = 0
    valid: bool = False
    index, low, high, valid = self._accrue(market)

    old_size: int256 = self.positions[owner][subaccount][market].size
    new_size: int256 = old_size + size_delta
    adds_risk: bool = abs(new_size) > abs(old_size) or (new_size != 0 and (new_size > 0) != (old_size > 0))
    if adds_risk:
        assert not reduce_only, "exchange: order is not reduce-only"
        assert not self.market_states[market].reduce_only, "exchange: market reduce-only"
        assert valid, "exchange: oracle invalid"

    # a sell fills at the band's low end, a buy at its high end (the index while valid)
    price: uint256 = self._fill_price(market, high if size_delta > 0 else low, size_delta)
    if size_delta > 0:
        assert price <= limit_price, "exchange: price above limit"
    else:
        assert price >= limit_price, "exchange: price below limit"
    if reduce_only:
        # a trigger order fills at the best skew for it seen in this block, or waits: whoever
        # moved the skew against it in the block (a keeper trading ahead of it) is refused
        skew: int256 = self._skew(market)
        assert skew <= self.market_states[market].skew_low if size_delta > 0 else skew >= self.market_states[market].skew_high, "exchange: skew moved this block"

    fee: uint256 = (convert(abs(size_delta), uint256) * price // c.WAD * self.markets[market].taker_fee + c.WAD * PRECISION - 1) // (c.WAD * PRECISION)
    self._fill(owner, subaccount, market, size_delta, price, fee, True)

    if adds_risk:
        cap: uint256 = self.markets[market].max_oi
        assert self.market_states[market].oi_long <= cap and self.market_states[market].oi_short <= cap, "exchange: open interest cap"
        # the side the trade grew, in USD: at most max_oi_usd, and max_oi_vault_factor x the Vault's tokens (GMX v2)
        side: uint256 = (self.market_states[market].oi_long if size_delta > 0 else self.market_states[market].oi_short) * index // c.WAD
        usd_cap: uint256 = self.market_limits[market].max_oi_usd
        factor: uint256 = self.market_limits[market].max_oi_vault_factor
        assert (usd_cap == 0 or side <= usd_cap) and (factor == 0 or side * c.WAD <= factor * (staticcall VAULT.token_balance()) * PRECISION), "exchange: open interest USD cap"
        # the Vault's free tokens must cover reserve_factor of all open interest (GMX v2)
        reserve_factor: uint256 = staticcall IReserve(VAULT.address).reserve_factor()
        if reserve_factor > 0:
            reserve: uint256 = reserve_factor * self._open_interest_notional() // c.WAD
            assert (staticcall VAULT.token_balance()) * PRECISION >= reserve + self.vault_debt, "exchange: vault reserve exceeded"
    h: Health = self._health(owner, subaccount, True)
    if adds_risk:
        assert h.equity >= convert(h.initial_margin, int256), "exchange: below initial margin"
    else:
        assert h.equity >= 0, "exchange: negative equity, liquidate instead"
    return price


@internal
def _fill(owner: address, subaccount: uint256, market: uint256, size_delta: int256, price: uint256, fee: uint256,
          trade: bool):
    """
    @notice Move a position by `size_delta` at `price`, settle its funding and realised PnL
            with the Vault, and take `fee` tokens (6 decimals) split between Vault and fund;
            `trade`: log it as a Trade (a liquidation or ADL fill logs the Liquidator's event).
    """
    self._touch(market)
    pos: Position = self.positions[owner][subaccount][market]
    cum: int256 = self.market_states[market].cumulative_funding
    funding: int256 = self._funding_owed(pos, cum)
    self._aggregate(market, pos, -1)

    realized: int256 = 0
    opening: int256 = size_delta
    if pos.size != 0 and (pos.size > 0) != (size_delta > 0):
        closing: int256 = size_delta
        if abs(size_delta) > abs(pos.size):
            closing = -pos.size
        removed: int256 = fm.ceil_div(pos.cost * abs(closing), abs(pos.size))
        realized = fm.mul_down(-closing, convert(price, int256)) - removed
        pos.cost -= removed
        opening = size_delta - closing
    pos.cost += fm.mul_up(opening, convert(price, int256))
    pos.size += size_delta
    pos.funding_entry = cum

    self._aggregate(market, pos, 1)
    self.positions[owner][subaccount][market] = pos
    skew: int256 = self._skew(market)
    self.market_states[market].skew_high = max(self.market_states[market].skew_high, skew)
    self.market_states[market].skew_low = min(self.market_states[market].skew_low, skew)

    # the subaccount's list of open markets
    markets: DynArray[uint256, MAX_POSITIONS] = self.accounts[owner][subaccount].markets
    if pos.size == 0:
        kept: DynArray[uint256, MAX_POSITIONS] = []
        for m: uint256 in markets:
            if m != market:
                kept.append(m)
        self.accounts[owner][subaccount].markets = kept
    elif pos.size == size_delta:
        limit: uint256 = 1 if self.accounts[owner][subaccount].isolated else MAX_POSITIONS
        assert len(markets) < limit, "exchange: too many positions"
        self.accounts[owner][subaccount].markets.append(market)

    # settle with the Vault in whole tokens, rounded in the Vault's favour; the Vault
    # passes the fund its share of the fee
    pnl_tokens: int256 = fm.floor_div(realized - funding, convert(PRECISION, int256))
    self._settle_with_vault(owner, subaccount, (pnl_tokens - convert(fee, int256)) * convert(PRECISION, int256))
    insurance_fee: uint256 = fee * self.markets[market].insurance_fee_share // c.WAD
    if insurance_fee > 0:
        self._pay(VAULT, INSURANCE_FUND.address, insurance_fee)
    if trade:
        log Trade(owner=owner, subaccount=subaccount, market=market, size_delta=size_delta, fill_price=price,
                  fee=fee, realized_pnl=realized, funding_paid=funding, new_size=pos.size)


@internal
def _aggregate(market: uint256, pos: Position, sign: int256):
    """Add (sign 1) or remove (sign -1) a position from its market's open interest and sums."""
    self.market_states[market].sum_cost += sign * pos.cost
    self.market_states[market].sum_funding_entry += sign * fm.mul_down(pos.size, pos.funding_entry)
    if pos.size > 0:
        self.market_states[market].oi_long = convert(convert(self.market_states[market].oi_long, int256) + sign * pos.size, uint256)
    else:
        self.market_states[market].oi_short = convert(convert(self.market_states[market].oi_short, int256) - sign * pos.size, uint256)


@internal
def _cover_if_flat(owner: address, subaccount: uint256, market: uint256):
    """A subaccount that holds no position and negative collateral has a shortfall nothing
    else will cover: record it as bad debt."""
    if len(self.accounts[owner][subaccount].markets) == 0 and self.accounts[owner][subaccount].collateral < 0:
        self._cover_bad_debt(owner, subaccount, market)


@internal
def _charge(owner: address, subaccount: uint256, amount: uint256, receiver: address) -> uint256:
    """
    @notice Take `amount` tokens (6 decimals) from a subaccount's collateral to `receiver` (a
            keeper, the fund). The tokens the collateral frees go straight to the receiver;
            the part the Vault lends (collateral going negative), and whatever the Exchange
            cannot send while the Vault owes it, the Vault pays, as far as it can.
    @return Tokens the receiver got.
    """
    if amount == 0:
        return 0
    freed: uint256 = convert(-self._book(owner, subaccount, -convert(amount * PRECISION, int256)), uint256) // PRECISION
    direct: uint256 = freed
    if self.vault_debt > 0:
        # the Exchange holds positive collateral less the Vault's debt: what it lacks of the
        # freed tokens settles that debt instead, and the Vault pays it below
        direct = min(freed, staticcall COLLATERAL.balanceOf(self))
        self.vault_debt -= (freed - direct) * PRECISION
    if direct > 0:
        self._send(receiver, direct)
        log Paid(receiver=receiver, amount=direct)
    return direct + self._pay(VAULT, receiver, amount - direct)


@internal
def _cover_bad_debt(owner: address, subaccount: uint256, market: uint256):
    """
    @notice A subaccount with no position left is under water: the fund pays the shortfall,
            which goes on to the Vault, the creditor of negative collateral. What the fund
            cannot pay has no position left for ADL to clear, so the Vault writes it off
            (its receivable falls): never a deficit that nothing could clear.
    """
    shortfall: uint256 = convert(-self.accounts[owner][subaccount].collateral, uint256)
    paid: uint256 = self._pay(INSURANCE_FUND, self, shortfall // PRECISION)
    self._credit(owner, subaccount, paid)
    written_off: uint256 = shortfall - paid * PRECISION
    if written_off > 0:
        self._book(owner, subaccount, convert(written_off, int256))
    log BadDebt(owner=owner, subaccount=subaccount, market=market, amount=shortfall,
                insurance_paid=paid * PRECISION, deficit=0, written_off=written_off)


@internal
def _book(owner: address, subaccount: uint256, delta: int256) -> int256:
    """
    @notice Change a subaccount's collateral by `delta` (USD 1e18, whole token units) and keep
            `vault_receivable` equal to the sum of negative collateral.
    @return The change in what the Exchange must hold for it: max(new, 0) - max(old, 0).
    """
    old: int256 = self.accounts[owner][subaccount].collateral
    new: int256 = old + delta
    self.accounts[owner][subaccount].collateral = new
    self.vault_receivable = convert(convert(self.vault_receivable, int256) + max(-new, 0) - max(-old, 0), uint256)
    return max(new, 0) - max(old, 0)


@internal
def _credit(owner: address, subaccount: uint256, amount: uint256):
    """
    @notice Credit `amount` tokens (6 decimals) that have just arrived at the Exchange (a
            deposit, an insurance payment): keep what backs positive collateral, and pass what
            repays negative collateral on to the Vault, which lent it.
    """
    held: int256 = self._book(owner, subaccount, convert(amount * PRECISION, int256))
    self._repay(amount - convert(held, uint256) // PRECISION)


@internal
def _settle_with_vault(owner: address, subaccount: uint256, delta: int256):
    """Change collateral by `delta` against the Vault, moving the tokens the Exchange holds."""
    held: int256 = self._book(owner, subaccount, delta)
    if held > 0:
        # profit the Vault cannot pay now is still credited: the Vault owes it (vault_debt)
        needed: uint256 = convert(held, uint256) // PRECISION
        self.vault_debt += (needed - self._pay(VAULT, self, needed)) * PRECISION
    elif held < 0:
        self._repay(convert(-held, uint256) // PRECISION)


@internal
def _repay(amount: uint256):
    """Tokens the Exchange holds beyond positive collateral: they settle the Vault's debt
    first, and the rest goes to the Vault."""
    settled: uint256 = min(amount, self.vault_debt // PRECISION)
    self.vault_debt -= settled * PRECISION
    self._send(VAULT.address, amount - settled)


@internal
def _pay_out(receiver: address, amount: uint256):
    """Send tokens that positive collateral owns, collecting the Vault's debt first if the
    Exchange holds too few."""
    if self.vault_debt > 0:
        balance: uint256 = staticcall COLLATERAL.balanceOf(self)
        if balance < amount:
            collected: uint256 = self._pay(VAULT, self, min(amount - balance, self.vault_debt // PRECISION))
            self.vault_debt -= collected * PRECISION
            assert balance + collected >= amount, "exchange: vault illiquid"
    self._send(receiver, amount)


@internal
def _pay(payer: IPayer, receiver: address, amount: uint256) -> uint256:
    """The Vault or the fund pays up to `amount` tokens; what it paid."""
    if amount == 0:
        return 0
    return extcall payer.pay(receiver, amount)


@internal
def _send(receiver: address, amount: uint256):
    if amount > 0:
        assert extcall COLLATERAL.transfer(receiver, amount, default_return_value=True), "exchange: transfer failed"
