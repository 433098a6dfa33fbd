# pragma version ~=0.4.3
# pragma nonreentrancy on
# pragma optimize codesize
"""
@title Oracle
@license MIT
@notice Whitelisted reporters push prices per asset. The feed's price is the median
        of reports fresher than `max_age`. Too few fresh reports, a move beyond
        `max_deviation` from the last accepted price, or no accepted price within
        `max_age` makes the feed invalid. A TWAP accumulator runs over accepted prices.
@dev A median that breaches the deviation guard is rejected; if the breach persists
     for `breach_timeout` seconds the new level is accepted (a circuit breaker with a
     cool-down, so a real gap does not freeze the feed forever). A timeout of 0 means
     only the owner can clear a breach, by `clear_breach`.
"""

from interfaces import IOracle

implements: IOracle

# ---------------------------------------------------------------- CONSTANTS
WAD: constant(uint256) = 10**18
MAX_REPORTERS: constant(uint256) = 16
OBSERVATIONS: constant(uint256) = 32
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

struct Report:
    price: uint256
    timestamp: uint256

struct FeedState:
    price: uint256            # last accepted price, 1e18
    updated_at: uint256       # when it was accepted
    breach_since: uint256     # 0 when no breach is pending
    cumulative: uint256       # sum of price * seconds over accepted prices
    cumulative_at: uint256
    observation_index: uint256

struct Observation:
    cumulative: uint256
    timestamp: uint256

# ---------------------------------------------------------------- STORAGE
owner: public(address)
reporters: public(DynArray[address, MAX_REPORTERS])
is_reporter: public(HashMap[address, bool])
feeds: public(HashMap[uint256, FeedConfig])
state: public(HashMap[uint256, FeedState])
reports: public(HashMap[uint256, HashMap[address, Report]])
observations: public(HashMap[uint256, Observation[OBSERVATIONS]])

# ---------------------------------------------------------------- EVENTS
event ReporterSet:
    reporter: indexed(address)
    enabled: bool

event FeedSet:
    asset: indexed(uint256)
    max_age: uint256
    min_reporters: uint256
    max_deviation: uint256
    breach_timeout: uint256

event PriceReported:
    asset: indexed(uint256)
    reporter: indexed(address)
    price: uint256

event PriceAccepted:
    asset: indexed(uint256)
    price: uint256
    reporters: uint256

event DeviationBreach:
    asset: indexed(uint256)
    median: uint256
    last_price: uint256

event BreachCleared:
    asset: indexed(uint256)
    price: uint256

event OwnershipTransferred:
    previous_owner: indexed(address)
    new_owner: indexed(address)


@deploy
def __init__():
    self.owner = msg.sender
    log OwnershipTransferred(previous_owner=empty(address), new_owner=msg.sender)


# ---------------------------------------------------------------- ADMIN
@external
def set_reporter(reporter: address, enabled: bool):
    """
    @notice Add or remove a whitelisted reporter.
    """
    self._only_owner()
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
    @notice Create or change the feed of `asset`.
    @param config See FeedConfig; max_deviation is 1e18 == 100%.
    """
    self._only_owner()
    assert config.max_age > 0, "oracle: zero max_age"
    assert config.min_reporters > 0 and config.min_reporters <= MAX_REPORTERS, "oracle: bad min_reporters"
    assert max(config.max_age, max(config.breach_timeout, config.observation_spacing)) <= MAX_DURATION, "oracle: duration too long"
    self.feeds[asset] = config
    log FeedSet(asset=asset, max_age=config.max_age, min_reporters=config.min_reporters,
                max_deviation=config.max_deviation, breach_timeout=config.breach_timeout)


@external
def clear_breach(asset: uint256):
    """
    @notice Accept the current median of a feed in breach (the owner's override).
    """
    self._only_owner()
    assert self.feeds[asset].max_age > 0, "oracle: unknown asset"
    median: uint256 = 0
    count: uint256 = 0
    median, count = self._median(asset)
    assert count >= self.feeds[asset].min_reporters, "oracle: too few fresh reports"
    self._accept(asset, median, count)
    log BreachCleared(asset=asset, price=median)


@external
def transfer_ownership(new_owner: address):
    self._only_owner()
    assert new_owner != empty(address), "oracle: zero owner"
    log OwnershipTransferred(previous_owner=self.owner, new_owner=new_owner)
    self.owner = new_owner


# ---------------------------------------------------------------- REPORTERS
@external
def report(asset: uint256, price: uint256):
    """
    @notice Report a price for `asset` (1e18 == $1) and refresh the feed.
    """
    assert self.is_reporter[msg.sender], "oracle: not a reporter"
    assert self.feeds[asset].max_age > 0, "oracle: unknown asset"
    assert price > 0, "oracle: zero price"
    assert price <= MAX_PRICE, "oracle: price too large"
    self.reports[asset][msg.sender] = Report(price=price, timestamp=block.timestamp)
    log PriceReported(asset=asset, reporter=msg.sender, price=price)

    median: uint256 = 0
    count: uint256 = 0
    median, count = self._median(asset)
    if count < self.feeds[asset].min_reporters:
        return
    last: uint256 = self.state[asset].price
    limit: uint256 = self.feeds[asset].max_deviation
    if last == 0 or limit == 0 or self._deviation(median, last) <= limit:
        self._accept(asset, median, count)
        return
    # a breach: start (or continue) the cool-down
    since: uint256 = self.state[asset].breach_since
    if since == 0:
        self.state[asset].breach_since = block.timestamp
        log DeviationBreach(asset=asset, median=median, last_price=last)
    elif self.feeds[asset].breach_timeout > 0 and block.timestamp >= since + self.feeds[asset].breach_timeout:
        self._accept(asset, median, count)
        log BreachCleared(asset=asset, price=median)


# ---------------------------------------------------------------- VIEWS
@view
@external
def latest(asset: uint256) -> (uint256, uint256, bool):
    """
    @notice The last accepted price and whether the feed is valid now.
    @return (price 1e18, accepted at, valid)
    """
    s: FeedState = self.state[asset]
    valid: bool = s.price > 0 and s.breach_since == 0 and block.timestamp <= s.updated_at + self.feeds[asset].max_age
    if valid:
        count: uint256 = 0
        median: uint256 = 0
        median, count = self._median(asset)
        valid = count >= self.feeds[asset].min_reporters
    return s.price, s.updated_at, valid


@view
@external
def median(asset: uint256) -> (uint256, uint256):
    """
    @notice The median of the fresh reports and how many there are.
    """
    return self._median(asset)


@view
@external
def twap(asset: uint256, window: uint256) -> uint256:
    """
    @notice Time-weighted average of accepted prices over about the last `window` seconds.
    @dev Uses the newest stored observation at least `window` old, or the oldest one kept
         (32 observations at least `observation_spacing` apart).
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


# ---------------------------------------------------------------- INTERNAL
@internal
def _only_owner():
    assert msg.sender == self.owner, "oracle: caller is not the owner"


@view
@internal
def _median(asset: uint256) -> (uint256, uint256):
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


@pure
@internal
def _deviation(a: uint256, b: uint256) -> uint256:
    diff: uint256 = a - b if a > b else b - a
    return diff * WAD // b


@internal
def _accept(asset: uint256, price: uint256, count: uint256):
    s: FeedState = self.state[asset]
    if s.cumulative_at > 0:
        s.cumulative += s.price * (block.timestamp - s.cumulative_at)
    s.cumulative_at = block.timestamp
    s.price = price
    s.updated_at = block.timestamp
    s.breach_since = 0
    last: Observation = self.observations[asset][s.observation_index]
    if last.timestamp == 0 or block.timestamp >= last.timestamp + self.feeds[asset].observation_spacing:
        if last.timestamp != 0:
            s.observation_index = (s.observation_index + 1) % OBSERVATIONS
        self.observations[asset][s.observation_index] = Observation(cumulative=s.cumulative, timestamp=block.timestamp)
    self.state[asset] = s
    log PriceAccepted(asset=asset, price=price, reporters=count)
