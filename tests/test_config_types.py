"""Policy types are strict: a value of the wrong type is one ConfigError naming the key, from a
TOML file and from the environment alike; nothing is coerced into a limit nobody wrote."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from safeguard._config import Policy
from safeguard._errors import ConfigError
from tests.killswitch.test_cli_state_dir import safeguard


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[risk]\nmax_leverage = true\n", "risk.max_leverage"),
        ('[retry]\nmax_attempts = "5"\n', "retry.max_attempts"),
        ("[retry]\nmax_attempts = 5.0\n", "retry.max_attempts"),
        ('[risk]\nrequire_stop = "yes"\n', "risk.require_stop"),
        ("[risk]\nrequire_stop = 1\n", "risk.require_stop"),
        ('[fleet]\nredis_url = "not a url"\n', "fleet.redis_url"),
        ('[fleet]\nredis_url = "http://redis.example:6379/0"\n', "fleet.redis_url"),
        ('[kill_switch]\nwebhook_url = "ftp://x"\n', "kill_switch.webhook_url"),
        ('[kill_switch]\nwebhook_url = "https://"\n', "kill_switch.webhook_url"),
        ('client_order_id_prefix = ""\n', "client_order_id_prefix"),
        ("client_order_id_prefix = 7\n", "client_order_id_prefix"),
        ("[risk.stress]\nshocks_pct = [-10, true]\n", "risk.stress.shocks_pct.1"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_naming_the_key(
    tmp_path: Path, text: str, key: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        Policy.load(write(tmp_path, text))
    assert caught.value.key == key
    assert key in str(caught.value)


def test_toml_integers_stay_valid_for_number_keys(tmp_path: Path) -> None:
    policy = Policy.load(
        write(tmp_path, "[risk]\nmax_leverage = 5\n[risk.stress]\nshocks_pct = [-10, 10]\n")
    )
    assert policy.risk.max_leverage == 5.0
    assert isinstance(policy.risk.max_leverage, float)
    assert policy.risk.stress.shocks_pct == (-10.0, 10.0)


@pytest.mark.parametrize(
    "url",
    ["redis://127.0.0.1:6379/0", "rediss://user:pw@redis.example:6380/1", "unix:///run/r.sock"],
)
def test_redis_urls_of_every_supported_scheme_load(tmp_path: Path, url: str) -> None:
    policy = Policy.load(write(tmp_path, f'[fleet]\nredis_url = "{url}"\n'))
    assert policy.fleet.redis_url is not None
    assert policy.fleet.redis_url.get_secret_value() == url


@pytest.mark.parametrize(
    ("key", "url"),
    [
        ("kill_switch.webhook_url", "ftp://ops:hunter2@alerts.example/T0123/secretpath"),
        ("fleet.redis_url", "http://ops:hunter2@redis.example/secretpath"),
    ],
)
def test_a_refused_url_is_not_echoed(tmp_path: Path, key: str, url: str) -> None:
    section, name = key.split(".")
    with pytest.raises(ConfigError) as caught:
        Policy.load(write(tmp_path, f'[{section}]\n{name} = "{url}"\n'))
    assert caught.value.key == key
    assert "hunter2" not in str(caught.value)
    assert "secretpath" not in str(caught.value)


@pytest.mark.parametrize(
    ("name", "value", "key"),
    [
        ("SAFEGUARD_RISK__MAX_LEVERAGE", "true", "risk.max_leverage"),
        ("SAFEGUARD_RETRY__MAX_ATTEMPTS", "5.5", "retry.max_attempts"),
        ("SAFEGUARD_RISK__REQUIRE_STOP", "yes", "risk.require_stop"),
        ("SAFEGUARD_FLEET__REDIS_URL", "not a url", "fleet.redis_url"),
        ("SAFEGUARD_CLIENT_ORDER_ID_PREFIX", "", "client_order_id_prefix"),
        ("SAFEGUARD_RISK", '{"max_leverage": "5"}', "risk.max_leverage"),
    ],
)
def test_the_environment_is_as_strict_as_the_file(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, key: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        Policy.load()
    assert caught.value.key == key
    assert key in str(caught.value)
    assert name in str(caught.value)  # the variable to fix, not only the key


def test_environment_values_load_with_their_types(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEGUARD_RISK__MAX_LEVERAGE", "7")
    monkeypatch.setenv("SAFEGUARD_RETRY__MAX_ATTEMPTS", "3")
    monkeypatch.setenv("SAFEGUARD_RISK__REQUIRE_STOP", "false")
    monkeypatch.setenv("SAFEGUARD_RISK__PRICE_BAND_PCT", "2.5e0")
    monkeypatch.setenv("SAFEGUARD_CLIENT_ORDER_ID_PREFIX", "123")
    monkeypatch.setenv("SAFEGUARD_RISK__STRESS__SHOCKS_PCT", "[-10, 10]")
    policy = Policy.load()
    assert (policy.risk.max_leverage, policy.retry.max_attempts) == (7.0, 3)
    assert policy.risk.require_stop is False
    assert policy.risk.price_band_pct == 2.5
    assert policy.client_order_id_prefix == "123"
    assert policy.risk.stress.shocks_pct == (-10.0, 10.0)


def test_malformed_json_in_the_environment_is_a_config_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SAFEGUARD_RISK", "{not json")
    with pytest.raises(ConfigError) as caught:
        Policy.load()
    assert caught.value.key == "SAFEGUARD_RISK"
    assert "SAFEGUARD_RISK" in str(caught.value)


def test_safeguard_policy_reports_malformed_environment_json_in_one_line(tmp_path: Path) -> None:
    done = safeguard(tmp_path, {**os.environ, "SAFEGUARD_RISK": "{not json"}, "policy")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "SAFEGUARD_RISK" in done.stderr


def test_safeguard_policy_refuses_a_webhook_that_is_not_http(tmp_path: Path) -> None:
    policy = write(tmp_path, '[kill_switch]\nwebhook_url = "ftp://x"\n')
    done = safeguard(tmp_path, dict(os.environ), "policy", "--policy", str(policy))
    assert done.returncode == 2
    assert "kill_switch.webhook_url" in done.stderr
