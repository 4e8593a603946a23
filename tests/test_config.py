"""Policy loading: typos, negatives, NaN and broken files are errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from safeguard._config import Policy
from safeguard._errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_are_valid_and_versioned() -> None:
    policy = Policy.build()
    assert policy.risk.require_stop is True
    assert len(policy.version) == 12
    assert policy.version == Policy.build().version


def test_version_changes_with_any_rule() -> None:
    assert Policy.build(risk={"max_leverage": 5}).version != Policy.build().version


def test_toml_loads(tmp_path: Path) -> None:
    policy = Policy.load(write(tmp_path, "[risk]\nmax_leverage = 7\n[retry]\nmax_attempts = 3\n"))
    assert policy.risk.max_leverage == 7
    assert policy.retry.max_attempts == 3


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[risk]\nmax_levrage = 5\n", "risk.max_levrage"),
        ("[risk]\nmax_leverage = -5\n", "risk.max_leverage"),
        ("[risk]\nmax_leverage = nan\n", "risk.max_leverage"),
        ("[risk]\nmax_leverage = inf\n", "risk.max_leverage"),
        ('[risk]\nmax_leverage = "lots"\n', "risk.max_leverage"),
        ("[risk]\nmax_effective_leverage = -1\n", "risk.max_effective_leverage"),
        ("[risk]\nmax_effective_leverage = nan\n", "risk.max_effective_leverage"),
        ("[riskk]\nmax_leverage = 5\n", "riskk"),
        ("[throttle]\nsoft_threshold = 0.95\nhard_threshold = 0.9\n", "throttle"),
        (
            "[kill_switch.triggers]\nmax_drawdown_pct = 150\n",
            "kill_switch.triggers.max_drawdown_pct",
        ),
        # Each loaded and silently turned a protection off: a bot never saw a kill from
        # another process, the venue's cancel-all timer was switched off, flattening priced
        # nothing.
        # [Risk] and [risk] were merged case-insensitively: one of them dropped, silently.
        ("[Risk]\nmax_leverage = 50\n[risk]\nmax_leverage = 5\n", "Risk"),
        ("[RISK]\nrequire_stop = false\n", "RISK"),
        ("[degradation]\nsevere_error_rate = 0.05\n", "degradation"),
        ("[kill_switch]\npoll_interval_s = 1e9\n", "kill_switch.poll_interval_s"),
        ("[kill_switch]\nvenue_countdown_s = 0\n", "kill_switch.venue_countdown_s"),
        ("[kill_switch]\nvenue_countdown_s = 0.0004\n", "kill_switch.venue_countdown_s"),
        ("[kill_switch]\nflatten_slippage_cap_pct = 100\n", "kill_switch.flatten_slippage_cap_pct"),
    ],
)
def test_bad_policy_names_the_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Policy.load(write(tmp_path, text))
    assert caught.value.key == key
    assert key in str(caught.value)


def test_broken_toml_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        Policy.load(write(tmp_path, "[risk\nmax_leverage = 5\n"))


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        Policy.load(tmp_path / "absent.toml")


def test_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEGUARD_RISK__MAX_LEVERAGE", "3")
    policy = Policy.load(write(tmp_path, "[risk]\nmax_leverage = 7\n"))
    assert policy.risk.max_leverage == 3


def test_unknown_environment_section_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEGUARD_RISKK__MAX_LEVERAGE", "3")
    with pytest.raises(ConfigError) as caught:
        Policy.load()
    assert caught.value.key == "SAFEGUARD_RISKK__MAX_LEVERAGE"


def test_unknown_environment_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEGUARD_RISK__MAX_LEVERAGEX", "3")
    with pytest.raises(ConfigError) as caught:
        Policy.load()
    assert caught.value.key == "risk.max_leveragex"


def test_secrets_are_never_printed(tmp_path: Path) -> None:
    policy = Policy.load(
        write(tmp_path, '[credentials]\napi_key = "KEY-abc123"\nsecret = "SEC-xyz789"\n')
    )
    assert policy.credentials.secret is not None
    assert policy.credentials.secret.get_secret_value() == "SEC-xyz789"
    for text in (repr(policy), str(policy), str(policy.model_dump()), policy.version):
        assert "KEY-abc123" not in text
        assert "SEC-xyz789" not in text


def test_secret_is_not_echoed_in_a_validation_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        Policy.load(write(tmp_path, "[credentials]\napi_key = 12345678901\n"))
    assert "12345678901" not in str(caught.value)


def test_policy_is_frozen() -> None:
    policy = Policy.build()
    with pytest.raises(ValueError, match="frozen"):
        policy.risk.max_leverage = 100  # type: ignore[misc]
