"""`safeguard policy`: the reference documents every key, and the README carries it verbatim."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from safeguard._config import Policy
from safeguard.cli import main
from safeguard.cli._policy import _model_of, policy_reference_markdown

README = Path(__file__).resolve().parents[1] / "README.md"


def _fields(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str | None]]:
    found: list[tuple[str, str | None]] = []
    for name, info in model.model_fields.items():
        found.append((prefix + name, info.description))
        sub = _model_of(info.annotation)
        if sub is not None:
            found.extend(_fields(sub, f"{prefix}{name}."))
    return found


def test_every_policy_key_says_what_it_is_for() -> None:
    undocumented = [key for key, text in _fields(Policy) if not (text and text.strip())]
    assert undocumented == []


def test_reference_lists_every_leaf_key() -> None:
    reference = policy_reference_markdown()
    for key, _ in _fields(Policy):
        assert f"`{key.rsplit('.', 1)[-1]}`" in reference or f"[{key}]" in reference, key


def test_readme_carries_the_generated_reference() -> None:
    text = README.read_text(encoding="utf-8")
    match = re.search(
        r"<!-- policy-reference:start -->\n(.*?)<!-- policy-reference:end -->", text, re.S
    )
    assert match, "README lacks the policy reference markers"
    assert match.group(1) == policy_reference_markdown(), (
        "README policy reference is stale: regenerate with `safeguard policy --reference`"
    )


def test_effective_policy_prints_without_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "p.toml"
    path.write_text('[risk]\nmax_leverage = 4\n[credentials]\nsecret = "s3cr3t-value"\n')
    assert main(["policy", "--policy", str(path)]) == 0
    out = capsys.readouterr().out
    assert "s3cr3t-value" not in out
    document = json.loads(out)
    assert document["policy"]["risk"]["max_leverage"] == 4
    assert document["version"] == Policy.load(path).version


def test_bad_policy_file_exits_with_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "p.toml"
    path.write_text("[risk]\nmax_levrage = 4\n")
    assert main(["policy", "--policy", str(path)]) == 2
    assert "risk.max_levrage" in capsys.readouterr().err


def test_effective_policy_masks_the_webhook_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A webhook URL's path is often its only secret: printed masked, like the credentials."""
    token = "T0KEN-6f1c0e2b9d77"
    path = tmp_path / "p.toml"
    path.write_text(f'[kill_switch]\nwebhook_url = "https://alerts.example.com/hook/{token}"\n')
    assert main(["policy", "--policy", str(path)]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["policy"]["kill_switch"]["webhook_url"] == "**********"
    monkeypatch.setenv("SAFEGUARD_KILL_SWITCH__WEBHOOK_URL", f"https://h.example/{token}")
    assert main(["policy"]) == 0
    out = capsys.readouterr().out
    assert token not in out
    assert json.loads(out)["policy"]["kill_switch"]["webhook_url"] == "**********"
    policy = Policy.load(path)
    assert policy.kill_switch.webhook_url is not None
    assert token not in repr(policy)
    assert policy.kill_switch.webhook_url.get_secret_value().endswith(token)
