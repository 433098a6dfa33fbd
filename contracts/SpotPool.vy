# pragma version ~=0.4.3
# pragma nonreentrancy on
# pragma optimize codesize
"""
@title SpotPool
@license MIT
@notice A constant-product spot market (Uniswap v2) of a base token against the
        collateral token: the on-chain price an attacker can move. Swaps take a 0.3% fee
        on the input, which stays in the pool for its liquidity providers. The pool keeps
        a cumulative price (USD 1e18 per base unit, times seconds) and a ring buffer of
        observations of it, so that a time-weighted average over a window can be read.
@dev The cumulative price is brought up to date on the first action of each block, before
     any reserve changes, with the price the reserves gave at the end of the last block
     (Uniswap v2's `_update`). A swap and its reversal inside one block therefore never
     reach the TWAP: only a price held across blocks does, weighted by how long it held.
     The first deposit locks MIN_SHARES shares that nobody owns, so the reserves never
     return to zero and the price is always defined once the pool has been seeded.
"""

from ethereum.ercs import IERC20
from ethereum.ercs import IERC20Detailed
import modules.constants as c

# ---------------------------------------------------------------- CONSTANTS
FEE_BPS: public(constant(uint256)) = 30  # the swap fee on the input, in basis points (0.3%)
BPS: constant(uint256) = 10_000          # 100% in basis points
MIN_SHARES: public(constant(uint256)) = 1_000  # shares the first deposit locks for ever
OBSERVATIONS: constant(uint256) = 64     # cumulative-price observations kept (a ring buffer)
# Reserves stay below 2**112 token units (Uniswap v2's bound), which keeps every product
# in the swap and price maths far below 2**256.
MAX_RESERVE: constant(uint256) = 2**112 - 1
MAX_SPACING: constant(uint256) = 10**9   # seconds (about 32 years)

# ---------------------------------------------------------------- STRUCTS
struct Observation:
    cumulative: uint256  # price_cumulative then, USD 1e18 * seconds
    timestamp: uint256   # unix seconds

# ---------------------------------------------------------------- IMMUTABLES
BASE: public(immutable(IERC20))    # the traded asset
QUOTE: public(immutable(IERC20))   # the collateral token (6 decimals for USDC)
BASE_PRECISION: public(immutable(uint256))   # 10**(18 - base decimals): 1e18 scale per base token unit
QUOTE_PRECISION: public(immutable(uint256))  # 10**(18 - quote decimals): USD 1e18 per quote token unit
OBSERVATION_SPACING: public(immutable(uint256))  # minimum seconds between observations

# ---------------------------------------------------------------- STORAGE
reserve_base: public(uint256)    # base token units held for trading
reserve_quote: public(uint256)   # quote token units held for trading
total_shares: public(uint256)    # LP shares, MIN_SHARES locked included
shares: public(HashMap[address, uint256])  # provider -> LP shares
price_cumulative: public(uint256)  # sum of spot price * seconds, USD 1e18 * seconds
cumulative_at: public(uint256)     # unix seconds `price_cumulative` runs to
observations: public(Observation[OBSERVATIONS])  # the TWAP ring buffer
observation_index: public(uint256)  # the newest observation's slot
seeded_at: public(uint256)   # unix seconds of the seeding deposit (the first observation's time)
seed_price: public(uint256)  # the spot price the seeding deposit set, USD 1e18 per base unit

# ---------------------------------------------------------------- EVENTS
event LiquidityAdded:
    provider: indexed(address)
    base: uint256    # base token units
    quote: uint256   # quote token units
    shares: uint256  # minted

event LiquidityRemoved:
    provider: indexed(address)
    base: uint256    # base token units
    quote: uint256   # quote token units
    shares: uint256  # burnt

event Swap:
    trader: indexed(address)
    base_in: bool        # True: base sold for quote; False: quote sold for base
    amount_in: uint256   # token units of the token sold
    amount_out: uint256  # token units of the token bought
    price: uint256       # spot price after the swap, USD 1e18 per base unit


@deploy
def __init__(base: IERC20, quote: IERC20, observation_spacing: uint256):
    """
    @notice A pool of `base` against `quote`, empty until the first `add_liquidity`.
    @param base The base token (at most 18 decimals).
    @param quote The collateral token (at most 18 decimals).
    @param observation_spacing Minimum seconds between TWAP observations: the buffer of 64
           then covers at least 63 times it. Not zero, at most 10**9.
    """
    assert base.address != empty(address) and quote.address != empty(address), "pool: zero token"
    assert base.address != quote.address, "pool: same token"
    assert observation_spacing > 0 and observation_spacing <= MAX_SPACING, "pool: bad spacing"
    base_decimals: uint256 = convert(staticcall IERC20Detailed(base.address).decimals(), uint256)
    quote_decimals: uint256 = convert(staticcall IERC20Detailed(quote.address).decimals(), uint256)
    assert base_decimals <= 18 and quote_decimals <= 18, "pool: too many decimals"
    BASE = base
    QUOTE = quote
    BASE_PRECISION = 10 ** (18 - base_decimals)
    QUOTE_PRECISION = 10 ** (18 - quote_decimals)
    OBSERVATION_SPACING = observation_spacing


# ================================================================ LIQUIDITY
@external
def add_liquidity(max_base: uint256, max_quote: uint256, min_shares: uint256) -> uint256:
    """
    @notice Deposit both tokens for LP shares. The first deposit sets the price and mints
            sqrt(base * quote) shares, MIN_SHARES of them locked; later ones take the two
            tokens at the pool's ratio, no more of either than its maximum, rounded up for
            the pool.
    @param max_base Base token units the caller offers, at most.
    @param max_quote Quote token units the caller offers, at most.
    @param min_shares The fewest shares the caller accepts (slippage).
    @return The shares minted to the caller.
    """
    assert max_base > 0 and max_quote > 0, "pool: zero amount"
    assert max_base <= MAX_RESERVE and max_quote <= MAX_RESERVE, "pool: reserve overflow"
    self._update()
    rb: uint256 = self.reserve_base
    rq: uint256 = self.reserve_quote
    total: uint256 = self.total_shares
    minted: uint256 = 0
    base_in: uint256 = max_base
    quote_in: uint256 = max_quote
    if total == 0:
        minted = isqrt(max_base * max_quote)
        assert minted > MIN_SHARES, "pool: too little liquidity"
        total = MIN_SHARES
        minted -= MIN_SHARES
        self.reserve_base = base_in
        self.reserve_quote = quote_in
        self._observe(self.price_cumulative)  # the TWAP runs from the seeding block
        self.seeded_at = block.timestamp
        self.seed_price = self._spot()
    else:
        minted = min(max_base * total // rb, max_quote * total // rq)
        assert minted > 0, "pool: zero shares"
        base_in = (minted * rb + total - 1) // total
        quote_in = (minted * rq + total - 1) // total
        assert rb + base_in <= MAX_RESERVE and rq + quote_in <= MAX_RESERVE, "pool: reserve overflow"
    assert minted >= min_shares, "pool: slippage"
    self.reserve_base = rb + base_in
    self.reserve_quote = rq + quote_in
    self.total_shares = total + minted
    self.shares[msg.sender] += minted
    assert extcall BASE.transferFrom(msg.sender, self, base_in, default_return_value=True), "pool: transfer failed"
    assert extcall QUOTE.transferFrom(msg.sender, self, quote_in, default_return_value=True), "pool: transfer failed"
    log LiquidityAdded(provider=msg.sender, base=base_in, quote=quote_in, shares=minted)
    return minted


@external
def remove_liquidity(share_amount: uint256, min_base: uint256, min_quote: uint256) -> (uint256, uint256):
    """
    @notice Burn LP shares for their part of both reserves, rounded down.
    @param share_amount Shares to burn, at most the caller's.
    @param min_base The fewest base token units the caller accepts (slippage).
    @param min_quote The fewest quote token units the caller accepts (slippage).
    @return (base token units, quote token units) paid to the caller.
    """
    assert share_amount > 0, "pool: zero amount"
    assert self.shares[msg.sender] >= share_amount, "pool: insufficient shares"
    self._update()
    total: uint256 = self.total_shares
    base_out: uint256 = share_amount * self.reserve_base // total
    quote_out: uint256 = share_amount * self.reserve_quote // total
    assert base_out >= min_base and quote_out >= min_quote, "pool: slippage"
    self.shares[msg.sender] -= share_amount
    self.total_shares = total - share_amount
    self.reserve_base -= base_out
    self.reserve_quote -= quote_out
    assert extcall BASE.transfer(msg.sender, base_out, default_return_value=True), "pool: transfer failed"
    assert extcall QUOTE.transfer(msg.sender, quote_out, default_return_value=True), "pool: transfer failed"
    log LiquidityRemoved(provider=msg.sender, base=base_out, quote=quote_out, shares=share_amount)
    return base_out, quote_out


# ================================================================ TRADING
@external
def swap(base_in: bool, amount_in: uint256, min_out: uint256) -> uint256:
    """
    @notice Sell exactly `amount_in` of one token for the other at the constant-product
            price, less the 0.3% fee on the input: out = in * 0.997 * R_out / (R_in + in * 0.997),
            rounded down.
    @param base_in True sells base for quote; False sells quote for base.
    @param amount_in Token units of the token sold.
    @param min_out The fewest token units of the token bought the caller accepts (slippage).
    @return Token units of the token bought, paid to the caller.
    """
    assert amount_in > 0, "pool: zero amount"
    self._update()
    r_in: uint256 = self.reserve_quote
    r_out: uint256 = self.reserve_base
    if base_in:
        r_in = self.reserve_base
        r_out = self.reserve_quote
    assert r_in > 0, "pool: no liquidity"
    assert amount_in <= MAX_RESERVE - r_in, "pool: reserve overflow"
    out: uint256 = self._amount_out(amount_in, r_in, r_out)
    assert out > 0, "pool: zero output"
    assert out >= min_out, "pool: slippage"
    sold: IERC20 = QUOTE
    bought: IERC20 = BASE
    if base_in:
        sold = BASE
        bought = QUOTE
        self.reserve_base = r_in + amount_in
        self.reserve_quote = r_out - out
    else:
        self.reserve_quote = r_in + amount_in
        self.reserve_base = r_out - out
    assert extcall sold.transferFrom(msg.sender, self, amount_in, default_return_value=True), "pool: transfer failed"
    assert extcall bought.transfer(msg.sender, out, default_return_value=True), "pool: transfer failed"
    log Swap(trader=msg.sender, base_in=base_in, amount_in=amount_in, amount_out=out, price=self._spot())
    return out


# ================================================================ VIEWS
@view
@external
def get_amount_out(base_in: bool, amount_in: uint256) -> uint256:
    """
    @notice What `swap(base_in, amount_in, 0)` would pay now.
    @param base_in True sells base for quote; False sells quote for base.
    @param amount_in Token units of the token sold.
    @return Token units of the token bought; 0 when the pool is empty.
    """
    if base_in:
        return self._amount_out(amount_in, self.reserve_base, self.reserve_quote)
    return self._amount_out(amount_in, self.reserve_quote, self.reserve_base)


@view
@external
def spot_price() -> uint256:
    """
    @notice The marginal price the reserves give now (no fee).
    @return USD 1e18 per base unit (one whole base token); 0 when the pool is empty.
    """
    return self._spot()


@view
@external
def twap(window: uint256) -> uint256:
    """
    @notice Time-weighted average of the spot price over about the last `window` seconds.
    @dev From the newest stored observation at least `window` old, or the oldest one kept,
         to now. A pool younger than `window` counts the time before it was seeded at its
         seeding price, so a young pool's TWAP has the full window's inertia (a pump in its
         first minutes weighs what it would later; Uniswap v3 refuses such a window with
         "OLD" instead). The current block's trades carry no weight: once an action has
         updated the cumulative price in this block, no time has passed since.
    @param window Seconds.
    @return USD 1e18 per base unit; the spot price when no observation is older than now;
            0 when the pool is empty.
    """
    now_cumulative: uint256 = self._cumulative_now()
    target: uint256 = 0
    if block.timestamp > window:
        target = block.timestamp - window
    best: Observation = empty(Observation)
    i: uint256 = self.observation_index
    for _: uint256 in range(OBSERVATIONS):
        o: Observation = self.observations[i]
        if o.timestamp == 0:
            break
        best = o
        if o.timestamp <= target:
            break
        i = (i + OBSERVATIONS - 1) % OBSERVATIONS
    if best.timestamp == 0 or best.timestamp >= block.timestamp:
        return self._spot()
    if best.timestamp > target and best.timestamp == self.seeded_at:  # younger than the window
        padded: uint256 = best.timestamp - target
        return (now_cumulative - best.cumulative + self.seed_price * padded) // (block.timestamp - target)
    return (now_cumulative - best.cumulative) // (block.timestamp - best.timestamp)


@view
@external
def twap_capacity() -> uint256:
    """
    @notice The longest window the observation buffer is sure to cover, seconds.
    @return (observations kept - 1) * observation spacing.
    """
    return (OBSERVATIONS - 1) * OBSERVATION_SPACING


# ================================================================ INTERNAL
@view
@internal
def _spot() -> uint256:
    """USD 1e18 per base unit from the reserves; 0 when empty."""
    rb: uint256 = self.reserve_base
    if rb == 0:
        return 0
    return self.reserve_quote * QUOTE_PRECISION * c.WAD // (rb * BASE_PRECISION)


@pure
@internal
def _amount_out(amount_in: uint256, r_in: uint256, r_out: uint256) -> uint256:
    """The constant-product output of `amount_in` less the fee, rounded down (token units)."""
    if r_in == 0 or amount_in > MAX_RESERVE:
        return 0
    in_after_fee: uint256 = amount_in * (BPS - FEE_BPS)
    return in_after_fee * r_out // (r_in * BPS + in_after_fee)


@view
@internal
def _cumulative_now() -> uint256:
    """price_cumulative brought to now at the spot price the reserves hold (USD 1e18 * s)."""
    if self.cumulative_at == 0:
        return 0
    return self.price_cumulative + self._spot() * (block.timestamp - self.cumulative_at)


@internal
def _update():
    """
    @notice On the first action of a block (before any reserve moves), add the spot price
            times the seconds since the last update to the cumulative price, and store an
            observation when OBSERVATION_SPACING has passed since the newest one.
    """
    if self.cumulative_at == block.timestamp:
        return
    cumulative: uint256 = self._cumulative_now()
    self.price_cumulative = cumulative
    self.cumulative_at = block.timestamp
    if self.reserve_base > 0:  # nothing to observe before the pool is seeded
        self._observe(cumulative)


@internal
def _observe(cumulative: uint256):
    """Store (cumulative, now) when OBSERVATION_SPACING has passed since the newest observation."""
    index: uint256 = self.observation_index
    last: Observation = self.observations[index]
    if last.timestamp != 0 and block.timestamp < last.timestamp + OBSERVATION_SPACING:
        return
    if last.timestamp != 0:
        index = (index + 1) % OBSERVATIONS
        self.observation_index = index
    self.observations[index] = Observation(cumulative=cumulative, timestamp=block.timestamp)
