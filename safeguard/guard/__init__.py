"""The guarded exchange: a ccxt exchange wrapped in retries, throttling and pre-trade checks."""
