# pragma version ~=0.4.3
"""
@title constants
@license MIT
@notice The constants that several contracts and modules share, defined once so that they
        cannot drift apart. Used as `import modules.constants as c` (inside modules/:
        `from . import constants as c`) and read as `c.WAD`.
@dev Constants only: no state, so no `initializes` or `uses` is needed, and every use is
     folded in at compile time.
"""

# ---------------------------------------------------------------- CONSTANTS
WAD: constant(uint256) = 10**18  # 1e18 fixed point: 1e18 == 1.0 == 100% == $1
IWAD: constant(int256) = 10**18  # WAD, signed
MAX_MARKETS: constant(uint256) = 16  # markets an Exchange may list; the Vault's NAV loops over as many
