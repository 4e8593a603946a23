"""The pure risk core: tier tables, liquidation prices, fills and the pre-trade verdict.

Nothing in this package performs I/O or reads the clock; time is always an argument.
"""
