"""The paper journal: published whole, read strictly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from safeguard._errors import ConfigError
from safeguard.paper._journal import JournalWriter, read_journal


def test_a_journal_appears_at_its_path_only_when_closed(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    writer = JournalWriter(path)
    writer.for_run("guarded").write(10.0, "start", seed=1)
    writer.for_run("naive").write(11.5, "ban", until=20.0)
    assert not path.exists()
    writer.close()
    records = list(read_journal(path))
    assert [(r["run"], r["kind"]) for r in records] == [("guarded", "start"), ("naive", "ban")]
    assert records[1]["until"] == 20.0
    assert not (tmp_path / "journal.jsonl.part").exists()


def test_a_run_that_raised_is_never_published(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"

    def crash() -> None:
        with JournalWriter(path) as writer:
            writer.write(1.0, "guarded", "start", seed=1)
            raise RuntimeError("bug in the middle of a run")

    with pytest.raises(RuntimeError, match="bug"):
        crash()
    assert not path.exists()
    assert (tmp_path / "journal.jsonl.part").read_text(encoding="utf-8").count("\n") == 1


def test_an_unknown_run_is_refused(tmp_path: Path) -> None:
    with JournalWriter(tmp_path / "j.jsonl") as writer, pytest.raises(ValueError, match="run"):
        writer.for_run("both")


def test_nan_is_not_written_as_invalid_json(tmp_path: Path) -> None:
    with (
        JournalWriter(tmp_path / "j.jsonl") as writer,
        pytest.raises(ValueError, match="Out of range float"),
    ):
        writer.write(1.0, "guarded", "bar", equity=float("nan"))
    # what was refused never reached the file; what is there parses
    assert list(read_journal(tmp_path / "j.jsonl")) == []


@pytest.mark.parametrize(
    ("line", "message"),
    [("not json", "j.jsonl:2: not JSON"), (json.dumps({"t": 1}), "j.jsonl:2: not a paper")],
)
def test_a_bad_line_names_the_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "j.jsonl"
    good = json.dumps({"t": 1.0, "run": "naive", "kind": "start"})
    path.write_text(f"{good}\n{line}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        list(read_journal(path))


def test_a_missing_journal_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        list(read_journal(tmp_path / "absent.jsonl"))
