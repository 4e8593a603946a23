"""pytest fixtures shipped with safeguard (loaded through the ``pytest11`` entry point).

Every name starts with ``sg_`` so it cannot clash with a project's own fixtures. Override the
inputs in your ``conftest.py`` to change what the others build:

=====================  ===========================================================================
``sg_seed``            the venue's seed (default 7)
``sg_venue_config``    the :class:`~safeguard.venue.VenueConfig` (default: ``sg_seed``, BTC + ETH)
``sg_wallet``          the account's starting USDT (default 10,000)
``sg_policy``          the :class:`~safeguard._config.Policy` for ``sg_guarded`` (default: the
                       library's defaults); its state is moved into ``tmp_path`` either way
``sg_paper``           the :class:`~safeguard.testing.PaperAccount` behind everything below
``sg_venue``           the seeded :class:`~safeguard.venue.Venue` on a ``ManualClock``
``sg_clock``           that clock; ``sg_paper.advance(s)`` moves the market with it
``sg_venue_client``    a real ccxt ``binanceusdm`` trading on the venue in process
``sg_guarded``         the guarded exchange over such a client (state dir in ``tmp_path``)
``sg_async_guarded``   the same with ``ccxt.async_support`` (for ``async def`` tests)
``sg_faults``          apply a fault plan: ``sg_faults({...})``, ``sg_faults.clear()``
``sg_venue_server``    the same venue on loopback HTTP (``.url``), for unmodified clients
=====================  ===========================================================================

The module imports nothing heavy: it loads in every pytest run where safeguard is installed,
so the venue, ccxt and the guard are imported by the fixtures that use them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import pytest

_F = TypeVar("_F", bound=Callable[..., Any])


def _async_fixture(function: _F) -> _F:
    # An async fixture needs pytest-asyncio's decorator unless the project runs asyncio_mode
    # "auto"; without pytest-asyncio no async test runs anyway.
    try:
        import pytest_asyncio
    except ImportError:  # pragma: no cover
        return cast(_F, pytest.fixture(function))
    return cast(_F, pytest_asyncio.fixture(function))


if TYPE_CHECKING:
    from safeguard._clock import ManualClock
    from safeguard._config import Policy
    from safeguard.testing._paper import PaperAccount
    from safeguard.venue import Venue, VenueConfig
    from safeguard.venue._faults import FaultPlan
    from safeguard.venue._server import VenueServer


class FaultSwitch:
    """The ``sg_faults`` fixture: install, inspect and clear the venue's fault plan.

    ``plan`` is a :class:`~safeguard.venue._faults.FaultPlan`, its dict form (what a TOML
    plan parses to) or a ``.toml``/``.json`` path. Rule times count from the call.
    """

    def __init__(self, paper: PaperAccount) -> None:
        self._paper = paper

    def __call__(self, plan: Any) -> FaultPlan | None:
        return self._paper.set_faults(plan)

    def apply(self, plan: Any) -> FaultPlan | None:
        return self._paper.set_faults(plan)

    def clear(self) -> None:
        self._paper.clear_faults()

    @property
    def fired(self) -> list[int]:
        """How many times each rule has fired, by its index in the plan."""
        return self._paper.faults_fired()


@pytest.fixture
def sg_seed() -> int:
    """The venue's seed. Override to see another market."""
    return 7


@pytest.fixture
def sg_venue_config(sg_seed: int) -> VenueConfig:
    """The venue's configuration. Override for other symbols, a thin book, scripted spikes."""
    from safeguard.venue import VenueConfig

    return VenueConfig(seed=sg_seed, symbols=("BTCUSDT", "ETHUSDT"))


@pytest.fixture
def sg_wallet() -> float:
    """The account's starting USDT."""
    return 10_000.0


@pytest.fixture
def sg_policy() -> Policy:
    """The policy ``sg_guarded`` enforces. Override with e.g. ``Policy.load("policy.toml")``;
    its state directory is replaced by one under ``tmp_path`` whatever you return."""
    from safeguard._config import Policy

    return Policy.build()


@pytest.fixture
def sg_paper(sg_venue_config: VenueConfig, sg_wallet: float) -> Iterator[PaperAccount]:
    """A funded account on a fresh seeded venue; closes its servers and switches after."""
    from safeguard.testing._paper import paper_account

    paper = paper_account(config=sg_venue_config, wallet=sg_wallet)
    try:
        yield paper
    finally:
        paper.close()


@pytest.fixture
def sg_venue(sg_paper: PaperAccount) -> Venue:
    """The seeded venue, on a ManualClock, with the account (``sg_paper.api_key``) on it."""
    return sg_paper.venue


@pytest.fixture
def sg_clock(sg_paper: PaperAccount) -> ManualClock:
    return sg_paper.clock


@pytest.fixture
def sg_venue_client(sg_paper: PaperAccount) -> Any:
    """A real, unguarded ccxt ``binanceusdm`` on the venue, in process (no sockets)."""
    return sg_paper.client()


@pytest.fixture
def sg_guarded(sg_paper: PaperAccount, sg_policy: Policy, tmp_path: Path) -> Any:
    """The guarded exchange over an in-process client. Kill switch, journal, equity marks and
    bans live in ``tmp_path / "safeguard"``; backoffs advance simulated time."""
    return sg_paper.guarded(sg_policy, state_dir=tmp_path / "safeguard")


@_async_fixture
async def sg_async_guarded(
    sg_paper: PaperAccount, sg_policy: Policy, tmp_path: Path
) -> AsyncIterator[Any]:
    """``sg_guarded`` over ``ccxt.async_support``: ``await sg_async_guarded.create_order(...)``."""
    exchange = sg_paper.guarded(sg_policy, state_dir=tmp_path / "safeguard-async", asyncio=True)
    try:
        yield exchange
    finally:
        await exchange.exchange.close()


@pytest.fixture
def sg_faults(sg_paper: PaperAccount) -> Iterator[FaultSwitch]:
    """Apply a fault plan to the venue (every client of ``sg_paper``, HTTP included)."""
    switch = FaultSwitch(sg_paper)
    try:
        yield switch
    finally:
        switch.clear()


@pytest.fixture
def sg_venue_server(sg_paper: PaperAccount) -> Iterator[VenueServer]:
    """The venue on a free loopback port: ``ccxt_client(sg_venue_server.url, key, secret)``,
    or ``sg_paper.http_client(sg_venue_server)``. The clock still moves only when told to."""
    server = sg_paper.serve()
    try:
        yield server
    finally:
        server.close()


__all__ = ["FaultSwitch"]
