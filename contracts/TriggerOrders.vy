# pragma version ~=0.4.3
# pragma nonreentrancy on
"""
@title TriggerOrders
@license MIT
@notice Stop-loss and take-profit orders stored on-chain. Any keeper may execute one once
        the index price crosses its trigger, for the order's keeper fee, paid out of the
        owner's equity after the order's trade (no more than the equity left). Orders are
        reduce-only: one that can no longer reduce a position is cancelled with a reason
        instead of executed. Every order carries a limit price, and the Exchange fills a
        triggered order no worse than it would have at the start of its block, so a keeper
        cannot sandwich it.
@dev A sell order (size < 0) closes a long: its stop-loss fires at index <= trigger, its
     take-profit at index >= trigger. A buy order closes a short, the other way round.
"""

from interfaces import IExchangeCore
import modules.bounds as bounds

# ---------------------------------------------------------------- CONSTANTS
KIND_STOP_LOSS: constant(uint256) = 0  # order kinds
KIND_TAKE_PROFIT: constant(uint256) = 1

# ---------------------------------------------------------------- STRUCTS
struct Order:
    owner: address
    subaccount: uint256
    market: uint256
    size: int256            # base units 1e18; < 0 sells (closes a long)
    trigger_price: uint256  # 1e18 USD
    limit_price: uint256    # worst fill accepted, 1e18 USD
    kind: uint256           # 0 stop-loss, 1 take-profit
    keeper_fee: uint256     # tokens (6 decimals) to the executing keeper
    active: bool            # neither executed nor cancelled

# ---------------------------------------------------------------- IMMUTABLES
EXCHANGE: public(immutable(IExchangeCore))  # the Exchange the orders trade on

# ---------------------------------------------------------------- STORAGE
order_count: public(uint256)             # orders placed; ids are 0 .. order_count - 1
orders: public(HashMap[uint256, Order])  # order id -> order (units: Order)

# ---------------------------------------------------------------- EVENTS
event OrderPlaced:
    order_id: indexed(uint256)
    owner: indexed(address)
    subaccount: uint256
    market: indexed(uint256)
    size: int256            # base units 1e18; < 0 sells
    trigger_price: uint256  # USD 1e18
    limit_price: uint256    # USD 1e18
    kind: uint256           # 0 stop-loss, 1 take-profit
    keeper_fee: uint256     # tokens (6 decimals)

event OrderCancelled:
    order_id: indexed(uint256)
    reason: String[64]

event OrderExecuted:
    order_id: indexed(uint256)
    keeper: indexed(address)
    size: int256            # base units 1e18 traded
    fill_price: uint256     # USD 1e18
    index_price: uint256    # USD 1e18
    keeper_fee: uint256     # tokens (6 decimals) paid


@deploy
def __init__(exchange: IExchangeCore):
    """
    @notice The contract has no owner: each order belongs to whoever placed it.
    @param exchange The Exchange the orders trade on; it must name this contract its
           TriggerOrders role.
    """
    EXCHANGE = exchange


# ================================================================ ORDERS
@external
def place(subaccount: uint256, market: uint256, size: int256, trigger_price: uint256, limit_price: uint256,
          kind: uint256, keeper_fee: uint256) -> uint256:
    """
    @notice Place a reduce-only trigger order on one of the caller's subaccounts.
    @param subaccount The caller's subaccount id.
    @param market The market id.
    @param size Base units 1e18 to trade when triggered; negative sells.
    @param trigger_price Index price that fires the order, 1e18 USD.
    @param limit_price Worst acceptable fill, 1e18 USD: above zero, below the maximum.
    @param kind 0 stop-loss, 1 take-profit.
    @param keeper_fee Tokens (6 decimals) paid to the keeper that executes it.
    @return The order id.
    """
    assert market < staticcall EXCHANGE.market_count(), "triggers: unknown market"
    assert size != 0, "triggers: zero size"
    assert size >= -bounds.MAX_SIZE and size <= bounds.MAX_SIZE, "triggers: size too large"
    assert keeper_fee <= bounds.MAX_AMOUNT, "triggers: keeper fee too large"
    assert trigger_price > 0, "triggers: zero trigger price"
    # a sell needs a floor above zero, a buy a ceiling below the maximum: no order without a limit
    assert limit_price > 0 and limit_price < max_value(uint256), "triggers: no limit price"
    assert kind <= KIND_TAKE_PROFIT, "triggers: unknown kind"
    order_id: uint256 = self.order_count
    self.order_count = order_id + 1
    self.orders[order_id] = Order(owner=msg.sender, subaccount=subaccount, market=market, size=size,
                                  trigger_price=trigger_price, limit_price=limit_price, kind=kind,
                                  keeper_fee=keeper_fee, active=True)
    log OrderPlaced(order_id=order_id, owner=msg.sender, subaccount=subaccount, market=market, size=size,
                    trigger_price=trigger_price, limit_price=limit_price, kind=kind, keeper_fee=keeper_fee)
    return order_id


@external
def cancel(order_id: uint256):
    """
    @notice Cancel one of the caller's active orders.
    @param order_id The order id.
    """
    assert self.orders[order_id].active, "triggers: order not active"
    assert self.orders[order_id].owner == msg.sender, "triggers: caller is not the owner"
    self._cancel(order_id, "cancelled by owner")


@external
def execute(order_id: uint256) -> bool:
    """
    @notice Execute an order whose trigger the index has crossed. An order that can no
            longer reduce its position is cancelled instead. Anyone (a keeper), for the
            order's keeper fee.
    @param order_id The order id.
    @return True if executed, False if cancelled.
    """
    order: Order = self.orders[order_id]
    assert order.active, "triggers: order not active"
    index: uint256 = 0
    valid: bool = False
    index, valid = staticcall EXCHANGE.index_price(order.market)
    assert self._triggered(order, index), "triggers: not triggered"

    position: int256 = (staticcall EXCHANGE.positions(order.owner, order.subaccount, order.market)).size
    if position == 0 or (position > 0) == (order.size > 0):
        self._cancel(order_id, "no position to reduce")
        return False
    size: int256 = order.size
    if abs(size) > abs(position):
        size = -position

    self.orders[order_id].active = False
    # the trade first, then the fee out of the equity it leaves: a stop-loss executes even
    # when its loss leaves less than the fee (the keeper then gets what is left)
    fill: uint256 = extcall EXCHANGE.trade_for(order.owner, order.subaccount, order.market, size, order.limit_price)
    paid: uint256 = extcall EXCHANGE.charge_fee(order.owner, order.subaccount, msg.sender, order.keeper_fee)
    log OrderExecuted(order_id=order_id, keeper=msg.sender, size=size, fill_price=fill, index_price=index,
                      keeper_fee=paid)
    return True


# ================================================================ VIEWS
@view
@external
def is_triggered(order_id: uint256) -> bool:
    """
    @notice Whether an active order's trigger is crossed at the current index.
    @param order_id The order id.
    @return True when `execute` would find it triggered; False for an inactive order.
    """
    order: Order = self.orders[order_id]
    if not order.active:
        return False
    index: uint256 = 0
    valid: bool = False
    index, valid = staticcall EXCHANGE.index_price(order.market)
    return self._triggered(order, index)


# ================================================================ INTERNAL
@pure
@internal
def _triggered(order: Order, index: uint256) -> bool:
    selling: bool = order.size < 0
    fires_below: bool = selling == (order.kind == KIND_STOP_LOSS)
    if fires_below:
        return index <= order.trigger_price
    return index >= order.trigger_price


@internal
def _cancel(order_id: uint256, reason: String[64]):
    self.orders[order_id].active = False
    log OrderCancelled(order_id=order_id, reason=reason)
