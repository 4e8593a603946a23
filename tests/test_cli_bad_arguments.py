"""Every command and sub-command, given bad arguments in a real process: one line naming the
problem, never a traceback, and the exit code of the README's table (``ExitCode``)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from safeguard.cli import COMMAND_MODULES, ExitCode

USAGE, UNREACHABLE, OK = ExitCode.USAGE, ExitCode.UNREACHABLE, ExitCode.OK
DOWN = "redis://127.0.0.1:1/0"  # nothing listens on port 1
CLOSED_URL = "http://127.0.0.1:1"

# {dir}: a directory; {file}: a plain file (so {file}/x cannot be created, even by root);
# {bad_toml}: a file that is not TOML; {busy}: a port something listens on.
CASES: list[tuple[str, ExitCode]] = [
    ("", USAGE),
    ("nosuch", USAGE),
    ("--nope", USAGE),
    ("policy --policy {dir}", USAGE),
    ("policy --policy {dir}/missing.toml", USAGE),
    ("policy --policy {bad_toml}", USAGE),
    ("policy --nope", USAGE),
    ("check --policy {dir} buy 0.1", USAGE),
    ("check --policy {bad_toml} buy 0.1", USAGE),
    ("check buy nan", USAGE),
    ("check buy -1", USAGE),
    ("check --symbol NOPE/USDT:USDT buy 0.1", USAGE),
    ("check --mark -5 buy 0.1", USAGE),
    ("stress --example --policy {dir}", USAGE),
    ("stress {dir}", USAGE),
    ("stress {dir}/missing.toml", USAGE),
    ("stress {bad_toml}", USAGE),
    ("stress --example --png {file}/heat.png", USAGE),
    ("stress", USAGE),
    ("paper --policy {dir}", USAGE),
    ("paper --policy {bad_toml}", USAGE),
    ("paper --strategy nomod:Cls", USAGE),
    ("paper --strategy safeguard.paper._strategy:NoSuchClass", USAGE),
    ("paper --out {file}/report", USAGE),
    ("paper --faults {dir}", USAGE),
    ("paper --duration 5", USAGE),
    ("paper --symbols NOPE/USDT:USDT", USAGE),
    ("journal {dir}/missing.jsonl", USAGE),
    ("journal {dir}", USAGE),
    ("journal {bad_toml}", USAGE),
    ("kill", USAGE),
    ("kill --reason x --state-dir {file}", USAGE),
    ("kill --reason x --policy {dir}", USAGE),
    ("kill --reason x --redis " + DOWN, UNREACHABLE),
    ("status --state-dir {file}", USAGE),
    ("status --policy {dir}", USAGE),
    ("status --history x", USAGE),
    ("status --redis " + DOWN, UNREACHABLE),
    ("status --json --redis " + DOWN, UNREACHABLE),
    ("resume --state-dir {file}", USAGE),
    ("resume --redis " + DOWN, UNREACHABLE),
    ("bans --policy {dir}", USAGE),
    ("bans --clear 203.0.113.9", USAGE),
    ("bans --state-dir {file}", USAGE),
    ("sim --seeds 0", USAGE),
    ("sim --seeds many", USAGE),
    ("sim --seed -1", USAGE),
    ("sim --seed 1 --seeds 2", USAGE),
    ("sim --bars 2", USAGE),
    ("sim --jobs 0", USAGE),
    ("sim --faults 1", USAGE),
    ("sim --seed 1 --faults 1,1", USAGE),
    ("sim --seed 1 --faults 999", USAGE),
    ("venue", USAGE),
    ("venue serve --port 70000", USAGE),
    ("venue serve --faults {dir}", USAGE),
    ("venue serve --faults {bad_toml}", USAGE),
    ("venue serve --wallet -1", USAGE),
    ("venue serve --port {busy}", UNREACHABLE),
    ("venue serve --port 0 --metrics-port {busy}", UNREACHABLE),
    ("venue faults notaurl --clear", USAGE),
    ("venue faults notaurl", USAGE),
    ("venue faults " + CLOSED_URL + " --clear", UNREACHABLE),
    ("venue faults " + CLOSED_URL + " --plan {dir}", USAGE),
]


def test_every_command_has_bad_argument_cases() -> None:
    tried = {case.split()[0] for case, _ in CASES if case and not case.startswith("-")}
    assert set(COMMAND_MODULES) <= tried


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    root = tmp_path_factory.mktemp("bad-arguments")
    (root / "dir").mkdir()
    (root / "file").write_text("a plain file\n")
    (root / "bad.toml").write_text("this is = = not toml [\n")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        yield {
            "dir": str(root / "dir"),
            "file": str(root / "file"),
            "bad_toml": str(root / "bad.toml"),
            "busy": str(busy.getsockname()[1]),
            "root": str(root),
        }


@pytest.mark.parametrize(("case", "expected"), CASES, ids=[c or "(nothing)" for c, _ in CASES])
def test_bad_arguments_get_a_message_and_the_tables_exit_code_never_a_traceback(
    case: str, expected: ExitCode, places: dict[str, str]
) -> None:
    argv = case.format(**places).split()
    env = {
        **os.environ,
        "XDG_STATE_HOME": str(Path(places["root"]) / "state"),
        "SAFEGUARD_STATE_DIR": "",
    }
    env.pop("SAFEGUARD_STATE_DIR")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "safeguard.cli",
            *argv,
            *(["--no-progress"] if argv[:1] == ["paper"] else []),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=places["root"],
        env=env,
    )
    both = done.stdout + done.stderr
    assert "Traceback" not in both, both
    assert done.returncode == expected, both
    if expected is not OK:
        assert done.stderr.strip(), "a failure must say why on stderr"


def test_the_readmes_exit_code_table_is_the_one_the_commands_use() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("| exit | meaning |", 1)[1].split("\n\n", 1)[0]
    documented = set()
    for row in section.splitlines()[2:]:
        cell = row.split("|")[1]
        documented |= {int(code) for code in cell.split(",")}
    assert documented == {int(code) for code in ExitCode}


@pytest.mark.parametrize(
    ("command", "content", "said"),
    [
        (["stress"], b"\xff\xfe{}", "not UTF-8 text"),
        (["stress"], b"[" * 100_000, "nests deeper than can be read"),
        (["journal"], b"\xff\xfe", "not UTF-8 text"),
    ],
)
def test_an_unreadable_input_file_is_a_usage_error_not_a_bug(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
    content: bytes,
    said: str,
) -> None:
    # Binary or deeply nested input files ended in "unexpected error ... this is a bug".
    from safeguard.cli import main

    path = tmp_path / "input.json"
    path.write_bytes(content)
    assert main([*command, str(path)]) == ExitCode.USAGE
    assert said in capsys.readouterr().err
