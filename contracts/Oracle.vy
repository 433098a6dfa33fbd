# pragma version ~=0.4.3
# pragma nonreentrancy on
# pragma optimize codesize
"""
@title Oracle
@license MIT
@notice Whitelisted reporters push prices per asset. The feed's price is the median
        of reports fresher than `max_age`. Too few fresh reports, a move beyond
        `max_deviation` from the price accepted before the current block, or no accepted
        price within `max_age` makes the feed invalid. A TWAP accumulator runs over
        accepted prices.
@dev The deviation guard compares each median with the price the feed had when the block
     began (its `reference`), so reporters cannot walk the price in small steps inside one
     block. A median beyond the guard is rejected and starts a breach at that level; a
     median that moves away from the breach level by more than the guard restarts it. If
     one level persists for `breach_timeout` seconds it is accepted (a circuit breaker with
     a cool-down, so a real gap does not freeze the feed forever). A timeout of 0 means
     only the owner can clear a breach, by `clear_breach`.
     While the feed is invalid, `price_band` gives the range of prices it cannot rule out:
     the last accepted price and the median of the fresh reports. The Exchange and the
     Vault settle anything that lets value leave at the end of that band that is worse for
     whoever acts (DESIGN §5b), unless the feed's `worse_price_when_invalid` is off.
     A feed may name a SpotPool (`set_source`), read as its spot price or its TWAP over a
     window. As the feed's *source* (primary), the pool replaces the reporters: reports are
     refused and anyone may `refresh` the feed from the pool. As its *fallback*, the pool
     stands in whenever fewer than `min_reporters` reports are fresh. Either way a pool's
     price goes through the same deviation guard, breach and band as a median; the pool's
     price takes the median's place, and a breach at a pool TWAP's level is accepted only
     after max(`breach_timeout`, the window plus the pool's observation spacing): a pump's
     footprint stays in a TWAP, level, that long after the pump ends. With no pool named (the default) nothing changes.
     A feed's `min_price` (0: none) is a floor the feed never reports through: a median (or
     pool price) below it starts a breach that `breach_timeout` never accepts, so the feed
     is invalid until a median at or above the floor is accepted (or the owner lowers the
     floor). Chainlink's minAnswer instead clamps the answer to the floor, which let Venus
     value LUNA at $0.10 while it traded far below; this guard stops the feed instead.
"""

from interfaces import IOracle
from interfaces import ISpotPool
import modules.constants as c
import modules.ownable as ownable

implements: IOracle

initializes: ownable
exports: (ownable.owner, ownable.transfer_ownership)

# ---------------------------------------------------------------- CONSTANTS
MAX_REPORTERS: constant(uint256) = 16  # whitelisted reporters
OBSERVATIONS: constant(uint256) = 32   # TWAP observations kept per asset (a ring buffer)
# Input bounds that keep deadlines and the TWAP accumulator far from overflow.
MAX_DURATION: constant(uint256) = 10**9  # seconds (about 32 years)
MAX_PRICE: constant(uint256) = 10**36    # 1e18 == $1: a quintillion dollars

# ---------------------------------------------------------------- STRUCTS
struct FeedConfig:
    max_age: uint256          # seconds a report or accepted price stays fresh
    min_reporters: uint256    # fresh reports needed for a median
    max_deviation: uint256    # 1e18 == 100%; 0 disables the guard
    breach_timeout: uint256   # seconds a breach must persist before it is accepted; 0 = never
    observation_spacing: uint256  # minimum seconds between TWAP observations
    worse_price_when_invalid: bool  # report the disputed band while invalid (a defence; True is safe)
    min_price: uint256        # USD 1e18; a median below it is a breach, never accepted nor clamped; 0: none

struct Report:
    price: uint256            # USD 1e18
    timestamp: uint256        # unix seconds

struct FeedState:
    price: uint256            # last accepted price, 1e18
    updated_at: uint256       # when it was accepted, unix seconds
    breach_since: uint256     # unix seconds; 0 when no breach is pending
    cumulative: uint256       # sum of price * seconds over accepted prices, USD 1e18 * seconds
    cumulative_at: uint256    # unix seconds `cumulative` runs to
    observation_index: uint256  # the newest observation's slot
    reference: uint256        # the accepted price when the current block began, 1e18
    reference_block: uint256  # the block `reference` was taken in
    breach_price: uint256     # the median the pending breach began (or restarted) at, 1e18

struct Observation:
    cumulative: uint256       # FeedState.cumulative then, USD 1e18 * seconds
    timestamp: uint256        # unix seconds

struct PoolSource:
    pool: address             # a SpotPool of the asset against the collateral; empty: none
    window: uint256           # seconds of the pool's TWAP to read; 0: its spot price
    primary: bool             # True: the pool is the feed's source (no reports); False: the fallback

# ---------------------------------------------------------------- STORAGE
reporters: public(DynArray[address, MAX_REPORTERS])  # the whitelist
is_reporter: public(HashMap[address, bool])  # address -> on the whitelist
feeds: public(HashMap[uint256, FeedConfig])  # asset id -> configuration (units: FeedConfig)
state: public(HashMap[uint256, FeedState])   # asset id -> feed state (units: FeedState)
reports: public(HashMap[uint256, HashMap[address, Report]])  # asset id -> reporter -> last report
observations: public(HashMap[uint256, Observation[OBSERVATIONS]])  # asset id -> TWAP ring buffer
sources: public(HashMap[uint256, PoolSource])  # asset id -> its SpotPool, if any (units: PoolSource)

# ---------------------------------------------------------------- EVENTS
event ReporterSet:
    reporter: indexed(address)
    enabled: bool

event FeedSet:
    asset: indexed(uint256)
    max_age: uint256         # seconds
    min_reporters: uint256
    max_deviation: uint256   # 1e18 == 100%
    breach_timeout: uint256  # seconds
    min_price: uint256       # USD 1e18; 0: no floor

event PriceReported:
    asset: indexed(uint256)
    reporter: indexed(address)
    price: uint256           # USD 1e18

event PriceAccepted:
    asset: indexed(uint256)
    price: uint256           # USD 1e18
    reporters: uint256       # fresh reports in the median; fewer than min_reporters: the pool's price

event DeviationBreach:
    asset: indexed(uint256)
    median: uint256          # USD 1e18
    last_price: uint256      # the guard's reference, USD 1e18

event MinPriceBreach:
    asset: indexed(uint256)
    median: uint256          # USD 1e18
    min_price: uint256       # the feed's floor, USD 1e18

event BreachCleared:
    asset: indexed(uint256)
    price: uint256           # USD 1e18

event SourceSet:
    asset: indexed(uint256)
    pool: indexed(address)   # empty: the feed has no pool
    window: uint256          # seconds of TWAP; 0: spot
    primary: bool            # the pool is the source, not the fallback


@deploy
def __init__():
    """
    @notice The deployer is the owner.
    """
    ownable.__init__()


# ================================================================ ADMIN
@external
def set_reporter(reporter: address, enabled: bool):
    """
    @notice Add or remove a whitelisted reporter. Only the owner.
    @param reporter The reporter; not the zero address.
    @param enabled True adds it (16 at most), False removes it.
    """
    ownable._check_owner()
    assert reporter != empty(address), "oracle: zero reporter"
    if enabled == self.is_reporter[reporter]:
        return
    if enabled:
        assert len(self.reporters) < MAX_REPORTERS, "oracle: too many reporters"
        self.reporters.append(reporter)
    else:
        kept: DynArray[address, MAX_REPORTERS] = []
        for r: address in self.reporters:
            if r != reporter:
                kept.append(r)
        self.reporters = kept
    self.is_reporter[reporter] = enabled
    log ReporterSet(reporter=reporter, enabled=enabled)


@external
def set_feed(asset: uint256, config: FeedConfig):
    """
    @notice Create or change the feed of `asset`. Only the owner.
    @param asset The asset id.
    @param config See FeedConfig: durations seconds (at most MAX_DURATION), max_deviation
           1e18 == 100%.
    """
    ownable._check_owner()
    assert config.max_age > 0, "oracle: zero max_age"
    assert config.min_reporters > 0 and config.min_reporters <= MAX_REPORTERS, "oracle: bad min_reporters"
    assert max(config.max_age, max(config.breach_timeout, config.observation_spacing)) <= MAX_DURATION, "oracle: duration too long"
    assert config.min_price <= MAX_PRICE, "oracle: min price too large"
    self.feeds[asset] = config
    log FeedSet(asset=asset, max_age=config.max_age, min_reporters=config.min_reporters,
                max_deviation=config.max_deviation, breach_timeout=config.breach_timeout,
                min_price=config.min_price)


@external
def clear_breach(asset: uint256):
    """
    @notice Accept the current median of a feed in breach (the owner's override).
    @param asset The asset id.
    """
    ownable._check_owner()
    assert self.feeds[asset].max_age > 0, "oracle: unknown asset"
    price: uint256 = 0
    count: uint256 = 0
    usable: bool = False
    price, count, usable = self._candidate(asset)
    assert usable, "oracle: too few fresh reports"
    assert price >= self.feeds[asset].min_price, "oracle: below min price"
    self._accept(asset, price, count, True)
    log BreachCleared(asset=asset, price=price)


@external
def set_source(asset: uint256, source: PoolSource):
    """
    @notice Name a SpotPool as the feed's source or fallback, or remove it. Only the owner.
            Making the pool the source deletes the feed's reports: from then on the pool
            alone prices it.
    @param asset The asset id; it must have a feed.
    @param source See PoolSource: a pool of the asset against the collateral (empty removes
           it), the TWAP window in seconds (0: spot; at most the pool's twap_capacity), and
           whether it is the source (True) or the fallback (False).
    """
    ownable._check_owner()
    assert self.feeds[asset].max_age > 0, "oracle: unknown asset"
    if source.pool == empty(address):
        self.sources[asset] = empty(PoolSource)
        log SourceSet(asset=asset, pool=empty(address), window=0, primary=False)
        return
    assert source.pool.is_contract, "oracle: pool is not a contract"
    assert source.window <= staticcall ISpotPool(source.pool).twap_capacity(), "oracle: window too long"
    self.sources[asset] = source
    if source.primary:
        for r: address in self.reporters:
            self.reports[asset][r] = empty(Report)
    log SourceSet(asset=asset, pool=source.pool, window=source.window, primary=source.primary)


# ================================================================ REPORTERS
@external
def report(asset: uint256, price: uint256):
    """
    @notice Report a price for `asset` (1e18 == $1) and refresh the feed. Only a reporter.
    @param asset The asset id.
    @param price USD 1e18, non-zero, at most MAX_PRICE.
    """
    assert self.is_reporter[msg.sender], "oracle: not a reporter"
    assert self.feeds[asset].max_age > 0, "oracle: unknown asset"
    assert price > 0, "oracle: zero price"
    assert price <= MAX_PRICE, "oracle: price too large"
    assert not self.sources[asset].primary, "oracle: priced by its pool"
    self.reports[asset][msg.sender] = Report(price=price, timestamp=block.timestamp)
    log PriceReported(asset=asset, reporter=msg.sender, price=price)
    self._submit(asset)


@external
def refresh(asset: uint256) -> bool:
    """
    @notice Submit the feed's pool price, as a report would submit a median: through the
            deviation guard, a breach, or acceptance. Anyone may call it; keepers do, so
            that a pool-priced feed stays fresh.
    @param asset The asset id; its feed must name a pool.
    @return True when the pool's price was submitted; False (nothing done) when the pool is
            a fallback and enough reports are fresh, or when the pool has no price.
    """
    assert self.sources[asset].pool != empty(address), "oracle: no pool source"
    price: uint256 = 0
    count: uint256 = 0
    usable: bool = False
    price, count, usable = self._candidate(asset)
    if not usable or count >= self.feeds[asset].min_reporters:
        return False
    self._submit(asset)
    return True


# ================================================================ VIEWS
@view
@external
def latest(asset: uint256) -> (uint256, uint256, bool):
    """
    @notice The last accepted price and whether the feed is valid now.
    @param asset The asset id.
    @return (price 1e18 USD, accepted at (unix seconds), valid)
    """
    price: uint256 = 0
    low: uint256 = 0
    high: uint256 = 0
    valid: bool = False
    price, low, high, valid = self._band(asset)
    return price, self.state[asset].updated_at, valid


@view
@external
def price_band(asset: uint256) -> (uint256, uint256, uint256, bool):
    """
    @notice The last accepted price, the band of prices the feed cannot rule out, and
            whether the feed is valid now. Valid: the band is the price itself. Invalid
            (a breach pending, too few or stale reports): it spans the last accepted price
            and the median of the fresh reports, if there are any.
    @param asset The asset id.
    @return (price, band low, band high, valid), prices 1e18 USD.
    """
    return self._band(asset)


@view
@external
def twap_capacity(asset: uint256) -> uint256:
    """
    @notice The longest TWAP window the observation buffer can cover, seconds.
    @param asset The asset id.
    @return (observations kept - 1) * observation spacing.
    """
    return (OBSERVATIONS - 1) * self.feeds[asset].observation_spacing


@view
@external
def median(asset: uint256) -> (uint256, uint256):
    """
    @notice The median of the fresh reports and how many there are.
    @param asset The asset id.
    @return (median USD 1e18, fresh reports); (0, 0) when there are none.
    """
    return self._median(asset)


@view
@external
def candidate(asset: uint256) -> (uint256, uint256, bool):
    """
    @notice The price the feed would take now: the median of the fresh reports, or, with
            fewer than `min_reporters` of them and a pool named, the pool's price.
    @param asset The asset id.
    @return (price USD 1e18, fresh reports, usable: enough reports or a pool price)
    """
    return self._candidate(asset)


@view
@external
def twap(asset: uint256, window: uint256) -> uint256:
    """
    @notice Time-weighted average of accepted prices over about the last `window` seconds.
    @dev Uses the newest stored observation at least `window` old, or the oldest one kept
         (32 observations at least `observation_spacing` apart).
    @param asset The asset id.
    @param window Seconds.
    @return USD 1e18; 0 before the feed's first accepted price.
    """
    s: FeedState = self.state[asset]
    if s.price == 0:
        return 0
    now_cumulative: uint256 = s.cumulative + s.price * (block.timestamp - s.cumulative_at)
    target: uint256 = 0
    if block.timestamp > window:
        target = block.timestamp - window
    best: Observation = empty(Observation)
    i: uint256 = s.observation_index
    for _: uint256 in range(OBSERVATIONS):
        o: Observation = self.observations[asset][i]
        if o.timestamp == 0:
            break
        best = o
        if o.timestamp <= target:
            break
        i = (i + OBSERVATIONS - 1) % OBSERVATIONS
    if best.timestamp == 0 or best.timestamp >= block.timestamp:
        return s.price
    return (now_cumulative - best.cumulative) // (block.timestamp - best.timestamp)


# ================================================================ INTERNAL
@view
@internal
def _median(asset: uint256) -> (uint256, uint256):
    """(median of the reports fresher than max_age, USD 1e18; how many there are)."""
    max_age: uint256 = self.feeds[asset].max_age
    prices: DynArray[uint256, MAX_REPORTERS] = []
    for r: address in self.reporters:
        rep: Report = self.reports[asset][r]
        if rep.timestamp > 0 and block.timestamp <= rep.timestamp + max_age:
            # insertion sort: at most 16 entries
            prices.append(rep.price)
            j: uint256 = len(prices) - 1
            for _: uint256 in range(MAX_REPORTERS):
                if j == 0 or prices[j - 1] <= prices[j]:
                    break
                tmp: uint256 = prices[j - 1]
                prices[j - 1] = prices[j]
                prices[j] = tmp
                j -= 1
    n: uint256 = len(prices)
    if n == 0:
        return 0, 0
    if n % 2 == 1:
        return prices[n // 2], n
    return (prices[n // 2 - 1] + prices[n // 2]) // 2, n


@view
@internal
def _band(asset: uint256) -> (uint256, uint256, uint256, bool):
    # field by field: the Exchange reads this on every trade, and the state has nine slots
    price: uint256 = self.state[asset].price
    median: uint256 = 0
    count: uint256 = 0
    median, count = self._median(asset)
    valid: bool = price > 0 and self.state[asset].breach_since == 0 \
        and block.timestamp <= self.state[asset].updated_at + self.feeds[asset].max_age \
        and count >= self.feeds[asset].min_reporters
    if not valid and self.sources[asset].pool != empty(address) and count < self.feeds[asset].min_reporters:
        # too few fresh reports (or the pool is the source): the pool's price stands in
        median = self._pool_price(asset)
        valid = price > 0 and median > 0 and self.state[asset].breach_since == 0 \
            and block.timestamp <= self.state[asset].updated_at + self.feeds[asset].max_age
    if valid or median == 0 or not self.feeds[asset].worse_price_when_invalid:
        return price, price, price, valid
    return price, min(price, median), max(price, median), valid


@view
@internal
def _candidate(asset: uint256) -> (uint256, uint256, bool):
    """(the median of the fresh reports, or the pool's price when there are too few of them
    and a pool is named, USD 1e18; fresh reports; whether the price is usable)."""
    median: uint256 = 0
    count: uint256 = 0
    median, count = self._median(asset)
    if count > 0 and count >= self.feeds[asset].min_reporters:  # count > 0: an unknown asset has none
        return median, count, True
    if self.sources[asset].pool == empty(address):
        return median, count, False
    price: uint256 = self._pool_price(asset)
    return price, count, price > 0


@view
@internal
def _pool_price(asset: uint256) -> uint256:
    """The feed's pool price: its spot, or its TWAP over the source's window (USD 1e18);
    0 when the pool has none, or one beyond MAX_PRICE."""
    source: PoolSource = self.sources[asset]
    price: uint256 = 0
    if source.window == 0:
        price = staticcall ISpotPool(source.pool).spot_price()
    else:
        price = staticcall ISpotPool(source.pool).twap(source.window)
    if price > MAX_PRICE:
        return 0
    return price


@pure
@internal
def _deviation(a: uint256, b: uint256) -> uint256:
    """|a - b| / b, 1e18 == 100%."""
    diff: uint256 = a - b if a > b else b - a
    return diff * c.WAD // b


@internal
def _submit(asset: uint256):
    """
    @notice Run the candidate price through the deviation guard: accept it, or start,
            restart or (after `breach_timeout`) accept a breach.
    """
    s: FeedState = self.state[asset]
    if s.reference_block != block.number:
        # the first report of this block: the guard's reference is the price before it
        s.reference = s.price
        s.reference_block = block.number
        self.state[asset].reference = s.price
        self.state[asset].reference_block = block.number
    median: uint256 = 0
    count: uint256 = 0
    median, count = self._median(asset)
    from_pool: bool = False
    if count < self.feeds[asset].min_reporters:
        if self.sources[asset].pool == empty(address):
            return
        # too few fresh reports: the pool's price stands in for the median
        median = self._pool_price(asset)
        if median == 0:
            return
        from_pool = True
    if median < self.feeds[asset].min_price:
        # below the floor: a breach (restarted at each new level) that no timeout accepts
        if s.breach_since == 0 or s.breach_price != median:
            self.state[asset].breach_since = block.timestamp
            self.state[asset].breach_price = median
            log MinPriceBreach(asset=asset, median=median, min_price=self.feeds[asset].min_price)
        return
    reference: uint256 = s.reference
    if reference == 0:
        reference = s.price  # the feed's first block: the first accepted price
    limit: uint256 = self.feeds[asset].max_deviation
    if reference == 0 or limit == 0 or self._deviation(median, reference) <= limit:
        self._accept(asset, median, count, False)
        return
    # a breach: start it, restart it at a new level, or accept a level that persisted
    if s.breach_since == 0 or self._deviation(median, s.breach_price) > limit:
        self.state[asset].breach_since = block.timestamp
        self.state[asset].breach_price = median
        log DeviationBreach(asset=asset, median=median, last_price=reference)
    elif self._breach_persisted(asset, s.breach_since, from_pool):
        self._accept(asset, median, count, True)
        log BreachCleared(asset=asset, price=median)


@view
@internal
def _breach_persisted(asset: uint256, since: uint256, from_pool: bool) -> bool:
    """
    @notice Whether a breach level held since `since` has persisted long enough to be
            accepted: `breach_timeout` (0: never), and for a pool TWAP's level at least the
            window plus the pool's observation spacing, as long as a pump's footprint stays
            level in the TWAP after the pump ends (an echo is not the market).
    """
    timeout: uint256 = self.feeds[asset].breach_timeout
    if timeout == 0:
        return False
    window: uint256 = self.sources[asset].window
    if from_pool and window > 0:
        timeout = max(timeout, window + staticcall ISpotPool(self.sources[asset].pool).OBSERVATION_SPACING())
    return block.timestamp >= since + timeout


@internal
def _accept(asset: uint256, price: uint256, count: uint256, resets_reference: bool):
    """
    @notice Take `price` as the feed's price. A price accepted through the breach process
            (or the owner's override) also becomes the guard's reference for the rest of
            this block, so that the reports that follow are not breaches again.
    """
    s: FeedState = self.state[asset]
    if resets_reference:
        s.reference = price
    if s.cumulative_at > 0:
        s.cumulative += s.price * (block.timestamp - s.cumulative_at)
    s.cumulative_at = block.timestamp
    s.price = price
    s.updated_at = block.timestamp
    s.breach_since = 0
    s.breach_price = 0
    last: Observation = self.observations[asset][s.observation_index]
    if last.timestamp == 0 or block.timestamp >= last.timestamp + self.feeds[asset].observation_spacing:
        if last.timestamp != 0:
            s.observation_index = (s.observation_index + 1) % OBSERVATIONS
        self.observations[asset][s.observation_index] = Observation(cumulative=s.cumulative, timestamp=block.timestamp)
    self.state[asset] = s
    log PriceAccepted(asset=asset, price=price, reporters=count)
