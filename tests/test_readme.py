"""The README is a promise: every command in it runs, every runnable snippet runs, and the two
set-up commands are the ones CI runs, word for word."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
CI = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
SAFEGUARD = [sys.executable, "-m", "safeguard"]

# Exit codes that are answers, not failures: `check` exits 1 for a denied order and `stress`
# exits 1 when some cell of the grid liquidates.
ANSWER_CODES = {"check": {0, 1}, "stress": {0, 1}}


def console_commands() -> list[str]:
    commands = []
    for block in re.findall(r"```console\n(.*?)```", README, re.S):
        commands += [line[2:].strip() for line in block.splitlines() if line.startswith("$ ")]
    return commands


def setup_commands() -> list[str]:
    section = README.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    return [line.strip() for line in section.splitlines() if line.startswith("    ")]


def runnable_snippets() -> list[str]:
    return re.findall(r"<!-- readme-test: run -->\n```python\n(.*?)```", README, re.S)


def test_two_setup_commands_and_ci_runs_both_word_for_word() -> None:
    commands = setup_commands()
    assert len(commands) == 2
    main_job, tests = commands
    assert "safeguard paper" in main_job
    assert "pytest" in tests
    assert tests in CI
    assert main_job in CI


def test_every_console_command_is_a_safeguard_command() -> None:
    commands = console_commands()
    assert len(commands) >= 8
    assert all(command.startswith("safeguard ") for command in commands)


@pytest.mark.slow
def test_every_console_command_runs(tmp_path: Path) -> None:
    # The README resumes right after its kill; a zero cooling period lets it (the refusal
    # during cooling has its own tests).
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "SAFEGUARD_KILL_SWITCH__COOLING_PERIOD_S": "0"}
    for command in console_commands():
        argv = shlex.split(command)[1:]
        if argv[:2] == ["venue", "serve"]:
            _serve_briefly(argv, tmp_path, env)
            continue
        done = subprocess.run(
            [*SAFEGUARD, *argv], cwd=tmp_path, env=env, capture_output=True, text=True,
            timeout=240, check=False,
        )  # fmt: skip
        allowed = ANSWER_CODES.get(argv[0], {0})
        assert done.returncode in allowed, f"{command}\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        assert done.stdout.strip(), f"{command} printed nothing"


def _serve_briefly(argv: list[str], cwd: Path, env: dict[str, str]) -> None:
    argv = [*argv]
    argv[argv.index("--port") + 1] = "0"  # the documented port may be taken on a CI box
    server = subprocess.Popen(
        [*SAFEGUARD, *argv], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        seen = []
        for line in server.stdout:
            seen.append(line)
            if line.startswith("venue:"):
                break
        assert any(line.startswith("venue: http://127.0.0.1:") for line in seen), "".join(seen)
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.parametrize("snippet", runnable_snippets())
def test_runnable_snippets_run(snippet: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # Each print says in its comment what it prints (``# prints: ALLOW``): the snippet's
    # output, line by line, starts with what the comments promise.
    promised = promised_output(snippet)
    assert promised, "a runnable snippet's prints say what they print (# prints: ...)"
    printed = done.stdout.splitlines()
    assert len(printed) == len(promised), done.stdout
    for line, promise in zip(printed, promised, strict=True):
        assert line.startswith(promise), f"printed {line!r}, the README says {promise!r}"


def promised_output(snippet: str) -> list[str]:
    """What a snippet's ``print`` lines promise, in order; a print without a promise fails."""
    promises = []
    for line in snippet.splitlines():
        if "print(" in line:
            found = re.search(r"# prints: (.+)$", line)
            assert found is not None, f"this print does not say what it prints: {line.strip()}"
            promises.append(found.group(1).strip())
    return promises


def test_every_code_is_documented() -> None:
    from safeguard._codes import Code

    missing = [code.value for code in Code if f"`{code.value}`" not in README]
    assert missing == []


def test_every_error_class_is_documented() -> None:
    from safeguard import _errors as errors

    missing = [name for name in errors.__all__ if name != "SafeguardError" and name not in README]
    assert missing == []


def layout_rows() -> list[tuple[list[str], str]]:
    """The rows of "How the code is laid out": the paths each names, and what it says."""
    section = README.split("## How the code is laid out", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 2:
            rows.append((re.findall(r"`([^`]+)`", cells[0]), cells[1]))
    return rows


def layout_paths() -> list[Path]:
    """Every path the layout names: one with a slash from ``safeguard/`` (or the top of the
    repository, where ``safeguard/`` has none), a bare name beside the row's path before it."""
    paths = []
    for names, _ in layout_rows():
        folder = ROOT
        for name in names:
            if "/" in name:
                path = ROOT / "safeguard" / name
                if not path.exists():
                    path = ROOT / name
                folder = path if name.endswith("/") else path.parent
            else:
                path = folder / name
            paths.append(path)
    return paths


def test_every_path_the_layout_names_exists() -> None:
    paths = layout_paths()
    assert len(paths) >= 40
    assert [path for path in paths if not path.exists()] == []


def test_the_layout_names_every_module_or_its_folder() -> None:
    # A newcomer finds any module from the README: by its own line, or by its package's
    # (whose docstring names the modules in it).
    named = set(layout_paths())
    unnamed = [
        str(module.relative_to(ROOT))
        for module in sorted((ROOT / "safeguard").rglob("*.py"))
        if module.name not in {"__init__.py", "__main__.py"}
        and module not in named
        and not any(folder.is_dir() and folder in module.parents for folder in named)
    ]
    assert unnamed == []
