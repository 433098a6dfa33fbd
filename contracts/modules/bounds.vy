# pragma version ~=0.4.3
"""
@title bounds
@license MIT
@notice Input bounds shared by the contracts that take amounts and sizes, so they agree.
@dev Far beyond any real use, they keep every product below 2**255: a bad input reverts
     with a reason instead of an overflow. TriggerOrders checks orders against the
     Exchange's bounds at placement, so an order cannot fail on them later.
"""

# ---------------------------------------------------------------- CONSTANTS
MAX_AMOUNT: constant(uint256) = 10**30  # collateral tokens (6 decimals) per deposit, withdrawal or fee
MAX_SIZE: constant(int256) = 10**33     # base units (1e18) per trade or order
