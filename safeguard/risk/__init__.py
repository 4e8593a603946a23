"""The pure risk core: tier tables, liquidation prices, fills, the pre-trade verdict, and the
risk of the positions already open (:mod:`safeguard.risk._positions`).

Nothing in this package performs I/O or reads the clock; time is always an argument.
"""
