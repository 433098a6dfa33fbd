"""perpsim's test suite, a regular package so that `tests.utils` resolves here.

pymultihash (a dependency of eth-ape) installs a top-level `tests` package into
site-packages; without this file, that package would shadow ours.
"""
