"""An unmodified ccxt ``binanceusdm`` pointed at a mock venue, configured exactly as the
reference says and nothing more: the tests prove what a real strategy's ccxt would see.

* every ``urls['api']`` entry is rewritten to the venue's base URL plus the original path, so
  a stray call lands on the mock venue (as a 404) rather than on the internet;
* ``options['fetchCurrencies'] = False``: with keys set, ``load_markets`` would otherwise call a
  spot endpoint that is not part of the futures API;
* Binance's futures error table is merged into ``exceptions['exact']``: ccxt picks it by URL
  prefix, which a local URL never matches, and -2019 or -4116 would surface as a bare
  ``ExchangeError``;
* ccxt's own throttler is off (``enableRateLimit=False``) and ``maxRetriesOnFailure`` is 0:
  the venue's limits are what is being tested, and safeguard owns the retry loop.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import ccxt
import ccxt.async_support


def configure(exchange: Any, url: str) -> Any:
    """Point an existing ccxt Binance USD-M instance at the venue at ``url``; returns it."""
    base = _base_url(url)
    exchange.urls["api"] = _rewrite(exchange.urls["api"], base)
    exchange.options["fetchCurrencies"] = False
    exchange.options["maxRetriesOnFailure"] = 0
    exchange.enableRateLimit = False
    exchange.exceptions["exact"].update(exchange.exceptions["linear"]["exact"])
    return exchange


def ccxt_client(
    url: str,
    api_key: str,
    secret: str,
    *,
    asyncio: bool = False,
    pro: bool = False,
    timeout_ms: int = 10_000,
) -> Any:
    """A new ``ccxt.binanceusdm`` (or ``ccxt.async_support.binanceusdm``, or with ``pro=True``
    ``ccxt.pro.binanceusdm``, whose ``watch_*`` methods use the venue's websockets) for the
    venue. An async or pro instance owns an aiohttp session: ``await exchange.close()``.
    """
    if not api_key or not secret:
        raise ValueError("api_key and secret must be non-empty strings")
    if isinstance(timeout_ms, bool) or not isinstance(timeout_ms, int) or timeout_ms <= 0:
        raise ValueError(f"timeout_ms must be a positive integer, got {timeout_ms!r}")
    if pro:
        from ccxt import pro as ccxt_pro  # websockets: imported only when asked for

        cls = ccxt_pro.binanceusdm
    else:
        cls = ccxt.async_support.binanceusdm if asyncio else ccxt.binanceusdm
    exchange = cls({"apiKey": api_key, "secret": secret, "timeout": timeout_ms})
    return configure(exchange, url)


def _base_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"venue url must look like http://127.0.0.1:8900, got {url!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"venue url must have no path or query, got {url!r}")
    return f"{parts.scheme}://{parts.netloc}"


def _rewrite(urls: Any, base: str) -> Any:
    if isinstance(urls, dict):
        return {key: _rewrite(value, base) for key, value in urls.items()}
    if isinstance(urls, str):
        return base + urlsplit(urls).path
    return urls


__all__ = ["ccxt_client", "configure"]
