"""Python mirrors of on-chain constants (one place, as in yearn-vaults-v3's tests)."""

WAD = 10**18
PRECISION = 10**12  # one USDC unit (6 decimals) in 1e18
USDC = 10**6
MAX_POSITIONS = 8
MAX_REPORTERS = 16
DAY = 86_400
EIGHT_HOURS = 28_800
INTEREST_8H = 10**14  # 0.01% per 8 h
INTEREST_CLAMP_8H = 5 * 10**14
LN2 = 693_147_180_559_945_309  # ln 2 in 1e18: the premium EMA's tau = half-life / ln 2
MAX_UINT = 2**256 - 1
