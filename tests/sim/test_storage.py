"""The simulator's state-directory troubles are the kernel's own refusals, also for root."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from safeguard.sim._storage import ReadOnly, unrestricted


def _tree(root: Path) -> Path:
    (root / "killswitch").mkdir(parents=True)
    (root / "killswitch" / "state.json").write_text("{}")
    (root / "journal.jsonl").write_text("")
    return root


def test_a_read_only_directory_refuses_every_write_even_to_root(tmp_path: Path) -> None:
    root = _tree(tmp_path / "bot")
    modes = {p: stat.S_IMODE(p.stat().st_mode) for p in [root, *root.rglob("*")]}
    window = ReadOnly(root)
    assert window.begin()  # probed: a write there is refused now
    try:
        with pytest.raises(PermissionError):
            (root / "new.tmp").write_text("x")  # nothing new is created
        with pytest.raises(PermissionError):
            (root / "killswitch" / "state.json").open("a")  # nor opened for writing
        with pytest.raises(PermissionError):
            os.replace(root / "journal.jsonl", root / "moved")  # nor renamed into place
        assert (root / "killswitch" / "state.json").read_text() == "{}"  # reading still works
        with unrestricted():  # the simulator's own bookkeeping inside the window
            os.truncate(root / "journal.jsonl", 0)
        with pytest.raises(PermissionError):
            (root / "journal.jsonl").open("a")  # and the window holds again after it
    finally:
        window.end()
    (root / "new.tmp").write_text("x")
    (root / "killswitch" / "state.json").write_text("{1}")
    assert {p: stat.S_IMODE(p.stat().st_mode) for p in modes} == modes


def test_a_descriptor_opened_before_the_window_keeps_writing(tmp_path: Path) -> None:
    # As on a directory an operator chmods under a running bot: the journal's open descriptor
    # is not refused (a filesystem remounted read-only would refuse it; the full disk covers
    # appends).
    root = _tree(tmp_path / "bot")
    with (root / "journal.jsonl").open("a") as journal:
        window = ReadOnly(root)
        assert window.begin()
        try:
            journal.write("record\n")
            journal.flush()
        finally:
            window.end()
    assert (root / "journal.jsonl").read_text() == "record\n"


def test_two_windows_give_root_its_override_back_only_when_both_end(tmp_path: Path) -> None:
    a, b = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    first, second = ReadOnly(a), ReadOnly(b)
    assert first.begin()
    assert second.begin()
    first.end()
    (a / "again").write_text("x")  # its own bits are back
    with pytest.raises(PermissionError):
        (b / "again").write_text("x")  # the other window still holds
    second.end()
    (b / "again").write_text("x")
    # Outside every window, root's override is back: a file with no write bit is writable.
    if os.geteuid() == 0:
        locked = tmp_path / "locked"
        locked.write_text("")
        locked.chmod(0o444)
        locked.write_text("root may")
