"""The packages' lazy exports (one loader, ``safeguard._lazy``) load, keep and list names."""

from __future__ import annotations

import importlib

import pytest

_PACKAGES = ("safeguard", "safeguard.fleet", "safeguard.paper", "safeguard.testing")


@pytest.mark.parametrize("package", [*_PACKAGES, "safeguard.venue"])
def test_every_listed_name_loads_and_an_unknown_one_is_an_attribute_error(package: str) -> None:
    module = importlib.import_module(package)
    for name in module.__all__:
        assert getattr(module, name) is not None, name
        assert name in dir(module)
    with pytest.raises(AttributeError, match=f"module '{package}' has no attribute 'no_such'"):
        module.no_such  # noqa: B018


def test_a_loaded_name_is_kept_and_a_relative_home_resolves_in_its_package() -> None:
    fleet = importlib.import_module("safeguard.fleet")
    budget = fleet.RedisRateBudget
    assert vars(fleet)["RedisRateBudget"] is budget
    assert budget.__module__ == "safeguard.fleet._budget"
