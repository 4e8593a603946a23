"""Mutation testing of safeguard's safety core, one scope at a time (mutmut, pinned).

    nice -n 10 python tools/mutation.py run journal     # one scope (see SCOPES)
    nice -n 10 python tools/mutation.py run all         # every scope, one after another
    python tools/mutation.py report journal             # the last run's score and survivors
    nice -n 10 python tools/mutation.py again pacing    # its survivors, against today's tests
    nice -n 10 python tools/mutation.py recheck checks tests/risk/test_new.py
        # plant each survivor of the last run again and run the tests written since

Each scope names the modules it mutates (optionally only some functions of them) and the
tests that cover them. mutmut runs only those tests, and for each mutant only the ones that
reach the mutated function, fastest first, stopping at the first failure. Everything happens
in a copy of the package and its tests under ``$TMPDIR/safeguard-mutation/<scope>``: the work
tree is never touched, and two scopes can run side by side.

The score counts behaviour. A surviving mutant that only changes the words of an error or log
message (a string in the message of a raised exception or in a log call, or that message
dropped) is reported apart as *message text*, and one matching a rule of ``EQUIVALENT`` (each
with its reason) as *equivalent*; every other survivor is listed with its diff in
``<scratch>/survivors.txt`` and must be killed by a test or explained in docs/mutation.md.
``report`` prints, per module, ``killed / (killed + survivors + mutants no test reaches)``.

mutmut is pinned (``mutmut==3.8.1``): install it with
``pip install -c constraints.txt mutmut==3.8.1``.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


@dataclass(frozen=True)
class Scope:
    modules: list[str]
    tests: list[str]
    only: list[str] = field(default_factory=list)
    """mutmut name globs (``safeguard.risk._verdict.x__gate_data*``): only these functions."""


# The journal and order identity share their tests. They are two scopes so that each
# finishes in a bounded time on a shared machine (orders.py alone has ~750 mutants).
_JOURNAL_TESTS = [
    "tests/guard/test_journal.py",
    "tests/guard/test_idempotency_ids.py",
    "tests/guard/test_idempotency_core.py",
    "tests/guard/test_raw_paths.py",
    "tests/guard/test_journal_file.py",
    "tests/guard/test_order_identity.py",
    "tests/guard/test_order_integrity.py",
    # Added 2026-12-07 15:30, after the first complete run of `journal`: one journal shared by
    # a process's clients, restarts, a full disk, and the file's edges (torn and corrupt
    # lines, compaction, the errors' keys) had tests outside the scope, or none.
    "tests/guard/test_journal_shared.py",
    "tests/guard/test_journal_restart.py",
    "tests/guard/test_journal_disk_full.py",
    "tests/guard/test_journal_edges.py",
    # Not here, to keep the run bounded: test_crash_order_path.py and
    # test_settle_window.py start processes and wait out settle windows for every
    # surviving mutant; tests/test_mutants_stay_killed.py runs their mutants in CI.
]

SCOPES: dict[str, Scope] = {
    "journal": Scope(["safeguard/guard/_journal.py"], _JOURNAL_TESTS),
    "orders": Scope(["safeguard/guard/_orders.py"], _JOURNAL_TESTS),
    "switch": Scope(
        [
            "safeguard/killswitch/_state.py",
            "safeguard/killswitch/_switch.py",
            "safeguard/killswitch/_inflight.py",
        ],
        [
            "tests/killswitch/test_switch.py",
            "tests/killswitch/test_switch_refresh_race.py",
            "tests/guard/test_engage_drains_guarded_sends.py",
        ],
        # The latch's gate: the pure transitions and refusals, the permit, and the engage's
        # drain of the sends it let through. (Persisting, adopting another process's state,
        # listeners, the webhook and the signal handler are outside this bounded scope.)
        only=[
            "safeguard.killswitch._state.x_transition__mutmut_*",
            "safeguard.killswitch._state.x_refusal_code__mutmut_*",
            "safeguard.killswitch._inflight.x_send_kind__mutmut_*",
            "safeguard.killswitch._switch.xǁKillSwitchǁpermit__mutmut_*",
            "safeguard.killswitch._switch.xǁKillSwitchǁ_enter__mutmut_*",
            "safeguard.killswitch._inflight.xǁSendsInFlightǁ*__mutmut_*",
        ],
    ),
    "redaction": Scope(
        ["safeguard/_redact.py"],
        [
            "tests/guard/test_request_log.py",
            "tests/guard/test_secrets_guarded.py",
            "tests/guard/test_secrets_cause_chain.py",
            "tests/guard/test_classify.py",
            "tests/test_log_discipline.py",
            "tests/guard/test_redaction_edges.py",
        ],
    ),
    "checks": Scope(
        ["safeguard/risk/_checks.py"],
        [
            "tests/risk/test_verdict.py",
            "tests/risk/test_verdict_failclosed.py",
            "tests/risk/test_verdict_degraded.py",
            "tests/risk/test_finding_values.py",
            "tests/risk/test_check_boundaries.py",
            "tests/risk/test_verdict_stress.py",  # the stress-grid check
            "tests/risk/test_verdict_cascade.py",  # the stress grid's cascade
            "tests/risk/test_crowding.py",  # the crowding check
            "tests/risk/test_verdict_band.py",
            "tests/risk/test_verdict_edges.py",
            "tests/risk/test_verdict_sizing_policy.py",
        ],
    ),
    "pacing": Scope(
        ["safeguard/guard/_pacing.py"],
        [
            "tests/guard/test_throttle.py",
            "tests/guard/test_guarded_throttle.py",
            "tests/guard/test_reserve_through_guard.py",
            "tests/guard/test_pacing.py",
            "tests/guard/test_guarded_pacing.py",  # limits a 429 teaches, and gives back
            # The pacer on the fleet's budget (Redis), which has no unchecked fast path.
            "tests/fleet/test_budget.py::test_a_guards_pacer_paces_on_the_fleets_shared_budget",
        ],
    ),
    "stale": Scope(
        ["safeguard/risk/_verdict.py", "safeguard/guard/_gate.py"],
        [
            "tests/risk/test_verdict.py",
            "tests/risk/test_verdict_failclosed.py",
            "tests/risk/test_stale_gates.py",
            "tests/guard/test_account_gap.py",
            "tests/risk/test_freshness.py",  # frozen prices, a mark out of band, the last price
            "tests/risk/test_verdict_sizing_policy.py",  # funding priced at its cap
            # A broken user-data stream denies new exposure (the gate's account gap).
            "tests/guard/test_stream_view.py::"
            "test_a_broken_user_data_stream_denies_until_rest_reconciles_the_account",
        ],
        only=[
            "safeguard.risk._verdict.x__gate_data__mutmut_*",
            "safeguard.guard._gate.*_account_gap__mutmut_*",
        ],
    ),
}

# Survivors whose change cannot alter behaviour: (the line before, the line after, why). Each
# pattern is a regular expression on one side of the mutant's one-line diff.
EQUIVALENT: list[tuple[str, str, str]] = [
    (
        r"encoding='utf-8'",
        r"encoding='UTF-8'",
        "the same codec under another name",
    ),
    (
        r"encoding='utf-8'",
        r"encoding=None|open\('[aw]'\)|read_text\(\)",
        "the platform's default text encoding, which is UTF-8 wherever safeguard runs "
        "(Linux, a UTF-8 locale; Python's UTF-8 mode)",
    ),
]
EQUIVALENT += [
    (
        r"getattr\(os, 'fdatasync', None\) or os\.fsync",
        r".",
        "the pending record is still synced before the send: by fsync (which also syncs the "
        "metadata) instead of fdatasync, or by fdatasync looked up without a fallback on a "
        "platform that has it",
    ),
    (
        r"name\.replace\('_', ''\)",
        r"name\.replace\('(XX_XX|_)', '(XXXX)?'\)",
        "the words looked for (private, public, get, delete, order, the fapi/dapi/papi/sapi "
        "prefixes) never span an underscore in ccxt's method names, so keeping or padding the "
        "underscores finds the same words",
    ),
    (
        r"secrets\.token_hex\(17\)",
        r"secrets\.token_hex\((18|None)\)",
        "a longer random token is cut to the same 36 characters",
    ),
    (
        r"\.decode\('utf-8', errors='replace'\)",
        r"\.decode\((errors='replace'|'UTF-8', errors='replace')\)",
        "bytes.decode's default codec is UTF-8, under any name",
    ),
    (
        r"self\._append_locked\(record, sync=False\)",
        r"sync=(None|True)",
        "a settle record is not synced by design (losing it costs a look-up); None is as "
        "false, and syncing it too changes only the speed",
    ),
    (
        r"sorted\(values, key=len, reverse=True\)",
        r"sorted\(values, (key=None, )?reverse=True\)",
        "the order of the alternatives matters only where one secret starts another, and "
        "there reverse text order also puts the longer one first",
    ),
    (
        r"quote\(value, safe=''\)",
        r"quote\(value, safe='XXXX'\)",
        "letters are never percent-encoded: 'X' marked safe changes nothing",
    ),
    (
        r"kwargs\.get\('method', 'GET'\)",
        r"kwargs\.get\('method', 'get'\)",
        "the method is upper-cased before it is compared",
    ),
    (
        r"price [<>] (least|rules\.max_price) \* \(1\.0 [-+] _GRID_SLACK\)",
        r"price [<>]= (least|rules\.max_price) \* \(1\.0 [-+] _GRID_SLACK\)",
        "the bound widened by its 1e-9 slack is never a price on the tick grid: '<' and '<=' "
        "differ only for a price exactly there",
    ),
    (
        r"\(stop - entry\) \* intent\.direction < 0|\(liq - order\.mark\) \* \(1 if",
        r"\(stop - entry\) / intent\.direction < 0|\(liq - order\.mark\) / \(1 if"
        r"|\(2 if long_after else -1\)|\(1 if long_after else -2\)",
        "the direction is +1 or -1: dividing by it, or doubling it, keeps the sign compared with 0",
    ),
    (
        r"long_after = priced\.costing\.position_after > 0",
        r"position_after >= 0",
        "the check runs only for an order that increases the position, which never leaves it at 0",
    ),
    (
        r"\[0, 0, 0\]|\(0, 0, 0\)",
        r"\[0, 0, 1\]|\(0, 0, 1\)",
        "the third count is cancels', which no engage waits for (no state forbids a cancel)",
    ),
    *[
        (
            before,
            after,
            "the counter only decides whether a finished send wakes an engage's drain: a count "
            "that stays non-zero wakes it on every exit (a wasted wake-up, never a missed one); "
            "'= 1' on entry, which can drop it to zero under a second drain, is not this",
        )
        for before, after in [
            (r"self\._draining \+= 1$", r"self\._draining (-= 1|\+= 2)$"),
            (r"self\._draining -= 1$", r"self\._draining (= 1|\+= 1|-= 2)$"),
        ]
    ],
    (
        r"threading\.get_ident\(\) if asyncio\._get_running_loop\(\) else None",
        r"asyncio\._get_running_loop\(\) or True else None",
        "a thread without a running loop never reads its own per-loop count: only a blocking "
        "engage made on a loop thread reads its own thread's",
    ),
    (
        r"unwaited = self\._blocking_others\(state\) - left if on_loop else 0",
        r"if on_loop or True else 0",
        "off an event loop, `left` is the same count, taken under the same lock: the "
        "difference is 0 either way",
    ),
    (
        r"if self\._draining and any\(",
        r"if self\._draining or any\(",
        "with no drain waiting, the floor test finds nothing to wake (any() of no drains); "
        "with one, 'or' only wakes it on more exits: a wasted wake-up, never a missed one",
    ),
    (
        r"None if current\.state is TradingState\.ACTIVE else refusal_code",
        r"TradingState\.ACTIVE and False else refusal_code",
        "refusal_code answers None for ACTIVE itself: the test before it is only a fast path",
    ),
    (
        r"isinstance\(method, str\) else ''",
        r"isinstance\(method, str\) else 'XXXX'",
        "any verb other than GET and DELETE is blocked: an empty one and 'XXXX' alike",
    ),
]
EQUIVALENT += [
    (
        r"self\._(written|abandoned) = False$",
        r"self\._(written|abandoned) = None$",
        "a pending write's flags are only ever tested for truth: None is as false",
    ),
    (
        r"self\._written = False$",
        r"self\._written = True$",
        "a pending write abandoned before its record lands then lets go of an id it does not "
        "hold yet (release is a no-op for any other holder), and the write itself hands the "
        "order over once it lands: the same orphan, at the same moment",
    ),
]
EQUIVALENT += [
    (
        r"shock_symbols = tuple\(dict\.fromkeys|shock_symbols=shock_symbols",
        r"shock_symbols = None|shock_symbols=None|cascade_correlation, crowd=",
        "the cascade's market holds exactly the symbols of the account the order leaves "
        "(pricing._cascade_market: every held symbol and the order's, which an increasing "
        "order keeps): first_breach's default shocks that same set. Only the order in which "
        "two equally large breaches are tried differs, so on such a tie another symbol may be "
        "named; the decision and the loss are the same",
    ),
]
# Survivors that change only the words of a message built away from the call that carries it,
# where the rule in ``classify`` cannot follow it: (the line before, the line after, where).
MESSAGE_TEXT: list[tuple[str, str, str]] = [
    (
        r'return \("(below|above) the market\'s (minimum|maximum) price", ',
        r".",
        "checks._price_filter_breach: its words go only into the price-filter finding's sentence",
    ),
    # pacing._past_deadline builds the sentence of the ThrottleHold a request refused past its
    # call's time budget raises: its words, and which of its sentences is picked. (A mutant
    # that makes it raise, such as ``why = None`` before ``why +=``, is behaviour.)
    (r"^\s*why = f?'", r"^\s*why = f?'", "pacing._past_deadline's words"),
    (r"^\s*why \+= '", r"^\s*why \+= '", "pacing._past_deadline's words"),
    (r"why = 'the venue answered 429 without", r"why = None", "pacing._past_deadline's words"),
    (r"elif decision\.limit == '429':", r".", "which of pacing._past_deadline's sentences"),
]
EQUIVALENT += [
    (
        r"if replaced is not None and named\.limit < replaced\.limit:",
        r"if replaced is not None and named\.limit <= replaced\.limit:",
        "a 429 naming the number already paced on has returned above (nothing to learn)",
    ),
    (
        r"if replaced is not None and named\.limit >= replaced\.limit:",
        r"if replaced is not None and named\.limit > replaced\.limit:",
        "a 429 naming the number already paced on changes no window: budget.learn reports "
        "nothing changed and the pacer returns before holding or logging anything",
    ),
]
EQUIVALENT += [
    (
        r"return depth if math\.isfinite\(depth\) else math\.inf",
        r"math\.isfinite\(depth\) or True else",
        "the only non-finite depth that is not already infinite is NaN, which no cap is "
        "at or above: weight() falls through to the deepest book's weight either way",
    ),
    (
        r"refused_limit\(str\(answer\.error\)\) if answer\.error is not None else None",
        r"answer\.error is not None or True else None",
        "str(None) is 'None', which names no limit: refused_limit answers None as before",
    ),
    (
        r"getattr\(self\.budget, 'decide_unchecked', None\) or self\.budget\.decide",
        r"getattr\((None, 'decide_unchecked'"
        r"|self\.budget, '(XXdecide_uncheckedXX|DECIDE_UNCHECKED)')",
        "the pacer then asks budget.decide, which checks the guard's own arguments and calls "
        "decide_unchecked: the same answer, a little slower",
    ),
    (
        r"return max\(decision\.retry_after, 0\.001\)$",
        r".",
        "ladder_pace's Hold branch: the ladder asks only as CANCEL, REDUCE_ONLY or "
        "ESSENTIAL_READ, and a budget holds (Hold) only a plain READ",
    ),
]
EQUIVALENT += [
    (
        r"required=False\)",
        r"required=None\)",
        "orders._optional_positive only tests `required` for truth: None is as false",
    ),
    (
        r"_optional_positive\(f'params\.\{key\}', params\[key\], required=True\)",
        r"required=(None|False)\)",
        "parse_call checks a trigger or activation price only when it is there (not None): "
        "_optional_positive reads `required` only for a value that is None",
    ),
]
# Equivalent only in one function: (mutmut name glob, the line before, the line after, why).
IN_FUNCTION: list[tuple[str, str, str, str]] = [
    (
        "safeguard.risk._verdict.x__gate_data__mutmut_*",
        r"^\s*continue$",
        r"^\s*break$",
        "only the last price's stamp can be None (mark and book times are checked present "
        "above), and it is the last of the stamps aged: stopping there skips nothing",
    ),
    (
        "safeguard.risk._verdict.x__gate_data__mutmut_*",
        r"mark_out_of_band\(market\.mark, market\.index, market\.last, since=now",
        r"since=None",
        "the verdict reads a StalePrice's input, reason and values, never its since",
    ),
]
MESSAGE_TEXT += [
    (
        r"missing\.append\('funding_cap \(",
        r"missing\.append\('",
        "verdict._gate_data: the words naming the missing funding cap, read only in the "
        "finding's sentence and its list of what is missing",
    ),
]
# Functions mutmut cannot test: they run once, when the module is imported, before mutmut
# switches a mutant on in the forked test process.
IMPORT_TIME = {
    "safeguard._redact.xǁ_Registryǁ__init__": "the process-wide registry is built at import",
}
KILLED = {1, 3, 36, 37, -24, 24, 152, 255}  # a failing test, a timeout, a type error
SURVIVED = 0


def scratch(scope: str) -> Path:
    return Path(tempfile.gettempdir()) / "safeguard-mutation" / scope


def prepare(scope: str) -> Path:
    work = scratch(scope)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    shutil.copytree(ROOT / "safeguard", work / "safeguard")
    _copy_tests(scope, work)
    return work


def _copy_tests(scope: str, work: Path) -> None:
    """The work tree's tests, and the mutmut config that selects the scope's."""
    if (work / "tests").exists():
        shutil.rmtree(work / "tests")
    shutil.copytree(ROOT / "tests", work / "tests")
    (work / "pyproject.toml").write_text(_config(scope), encoding="utf-8")


def _config(scope: str) -> str:
    spec = SCOPES[scope]
    tests = [t for t in spec.tests if (ROOT / t.split("::", 1)[0]).exists()]
    config = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    return (
        config
        + "\n[tool.mutmut]\n"
        + "\n".join(
            [
                'source_paths = ["safeguard"]',
                f"only_mutate = {json.dumps(spec.modules)}",
                f"pytest_add_cli_args_test_selection = {json.dumps(tests)}",
                'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q"]',
                "use_git_change_detection = false",
                "",
            ]
        )
    )


def _mutmut(work: Path, max_children: int, names: list[str]) -> int:
    # The copy's package must be the one imported, not the work tree on PYTHONPATH.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    command = [PYTHON, "-m", "mutmut", "run", "--max-children", str(max_children), *names]
    return subprocess.run(command, cwd=work, env=env, check=False).returncode


def run(scope: str, max_children: int) -> int:
    work = prepare(scope)
    code = _mutmut(work, max_children, SCOPES[scope].only)
    report(scope)
    return code


def again(scope: str, max_children: int) -> int:
    """Run the last run's behaviour survivors again (``mutmut run NAME...``) against the work
    tree's tests as they are now: the tests written for them since. mutmut keeps what it
    learned of which tests reach which function, and learns it for the new tests. Refused
    when a mutated module changed since the run (its mutants may no longer apply), or the
    scope's test list (mutmut would judge every mutant again: ``run`` the scope instead)."""
    work = scratch(scope)
    for module in SCOPES[scope].modules:
        if (ROOT / module).read_text(encoding="utf-8") != (work / module).read_text(
            encoding="utf-8"
        ):
            raise SystemExit(f"{module} changed since the run: run the scope again")
    if (work / "pyproject.toml").read_text(encoding="utf-8") != _config(scope):
        # mutmut judges every mutant again when its configuration changed.
        raise SystemExit(f"the {scope} scope's tests or settings changed since the run: run it")
    report(scope)  # writes survivors.txt
    names = [
        block.split("\n", 1)[0]
        for block in (work / "survivors.txt").read_text(encoding="utf-8").split("\n\n")
        if block.strip()
    ]
    if not names:
        return 0
    _copy_tests(scope, work)
    code = _mutmut(work, max_children, names)
    report(scope)
    return code


# --- the report --------------------------------------------------------------------------


def _functions(path: Path) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.name: node
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }


def _first_difference(a: ast.AST, b: ast.AST, parents: list[ast.AST]) -> list[ast.AST] | None:
    """The path of ``a``'s nodes down to where ``b`` first differs from it (``None``: same)."""
    if type(a) is not type(b):
        return [*parents, a]
    for name, left in ast.iter_fields(a):
        right = getattr(b, name, None)
        if isinstance(left, list) and isinstance(right, list):
            if len(left) != len(right):
                return [*parents, a]
            for x, y in zip(left, right, strict=True):
                if isinstance(x, ast.AST) and isinstance(y, ast.AST):
                    found = _first_difference(x, y, [*parents, a])
                    if found is not None:
                        return found
                elif x != y:
                    return [*parents, a]
        elif isinstance(left, ast.AST) and isinstance(right, ast.AST):
            found = _first_difference(left, right, [*parents, a])
            if found is not None:
                return found
        elif left != right:
            return [*parents, a]
    return None


_LOG_METHODS = {"trace", "debug", "info", "success", "warning", "error", "critical", "exception"}


def _is_log_call(call: ast.Call) -> bool:
    func = call.func
    return (
        isinstance(func, ast.Attribute)
        and func.attr in _LOG_METHODS
        and isinstance(func.value, ast.Name)
        and func.value.id in {"logger", "log"}
    )


# Value types (and orders.py's error builder ``_invalid(field, message)``, whose error may be
# returned to be raised by the caller) whose positional argument at this index is the human
# sentence (the code, the field and the numbers beside it are data, and mutants of those count).
_MESSAGE_ARG = {"Finding": 2, "GateDenial": 1, "Refusal": 0, "_invalid": 1}


def _called(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else ""


def _is_message_only(path: list[ast.AST]) -> bool:
    """Whether the first difference lies in the text of a raised exception's message (its first
    argument), of a finding's or a denial's sentence, or of a log call (any argument), or
    drops that text."""
    for depth in range(len(path) - 1, -1, -1):
        node = path[depth]
        if not isinstance(node, ast.Call):
            continue
        below = path[depth + 1] if depth + 1 < len(path) else None
        # The exception raised itself, not a call inside its message (``", ".join(...)``).
        raised = depth > 0 and isinstance(path[depth - 1], ast.Raise)
        if _is_log_call(node):
            return below is None or below in node.args
        index = _MESSAGE_ARG.get(_called(node), 0 if raised else None)
        if index is None:
            continue  # a call inside the text (``", ".join(...)``): look further up
        return below is None or (len(node.args) > index and below is node.args[index])
    return False


def classify(functions: dict[str, ast.FunctionDef | ast.AsyncFunctionDef], name: str) -> str:
    """``message`` or ``behaviour`` for the surviving mutant ``name``."""
    original, mutant = _pair(functions, name)
    if not isinstance(original, ast.FunctionDef | ast.AsyncFunctionDef) or not isinstance(
        mutant, ast.FunctionDef | ast.AsyncFunctionDef
    ):
        return "behaviour"
    path = _first_difference(
        ast.Module(body=original.body, type_ignores=[]),
        ast.Module(body=mutant.body, type_ignores=[]),
        [],
    )
    if path is None:
        return "behaviour"
    if _is_message_only(path) or _assigns_message_text(path, _message_only_names(original)):
        return "message"
    return "behaviour"


def _paths_to_names(node: ast.AST, parents: list[ast.AST]) -> list[tuple[list[ast.AST], str]]:
    """Every name read in ``node``, with the path of nodes above it."""
    found: list[tuple[list[ast.AST], str]] = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Load):
            found.append(([*parents, node], child.id))
        found += _paths_to_names(child, [*parents, node])
    return found


def _assigned_name(statement: ast.AST) -> str | None:
    if (
        isinstance(statement, ast.Assign)
        and len(statement.targets) == 1
        and isinstance(statement.targets[0], ast.Name)
    ):
        return statement.targets[0].id
    return None


def _assigns_message_text(path: list[ast.AST], names: set[str]) -> bool:
    """Whether ``path`` lies in the value of an assignment to a name only the message reads."""
    return any(
        _assigned_name(node) in names and index + 1 < len(path) and path[index + 1] is node.value  # type: ignore[attr-defined]
        for index, node in enumerate(path)
    )


def _message_only_names(function: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    """Local names (``chain = f" after {n} ..."``) read only where a message is built: in the
    text of a finding, a denial, a raised exception or a log call, or in another such name."""
    body = ast.Module(body=function.body, type_ignores=[])
    reads = _paths_to_names(body, [])
    assigned = {n for node in ast.walk(body) if (n := _assigned_name(node)) is not None}
    names = set(assigned)
    changed = True
    while changed:  # drop a name read anywhere else, until none is
        changed = False
        for name in list(names):
            for path, read in reads:
                if read == name and not (
                    _is_message_only([*path, ast.Name(id=name)])
                    or _assigns_message_text([*path, ast.Name(id=name)], names - {name})
                ):
                    names.discard(name)
                    changed = True
                    break
    return names


def _pair(
    functions: dict[str, ast.FunctionDef | ast.AsyncFunctionDef], name: str
) -> tuple[ast.AST | None, ast.AST | None]:
    short = name.rsplit(".", 1)[1]
    return functions.get(short.rsplit("__mutmut_", 1)[0] + "__mutmut_orig"), functions.get(short)


def diff(functions: dict[str, ast.FunctionDef | ast.AsyncFunctionDef], name: str) -> list[str]:
    """The lines the mutant changed, as ``-``/``+`` lines (the function's name left out)."""
    original, mutant = _pair(functions, name)
    if original is None or mutant is None:
        return ["(source not found)"]
    # The def line too (a mutated default value lives there), with the names made equal.
    assert isinstance(original, ast.FunctionDef | ast.AsyncFunctionDef)
    assert isinstance(mutant, ast.FunctionDef | ast.AsyncFunctionDef)
    before = ast.unparse(original).replace(original.name, "f", 1).splitlines()
    after = ast.unparse(mutant).replace(mutant.name, "f", 1).splitlines()
    return [
        line
        for line in difflib.unified_diff(before, after, lineterm="", n=0)
        if line[:1] in "+-" and line[:3] not in ("---", "+++")
    ]


def equivalent(lines: list[str], rules: list[tuple[str, str, str]] = EQUIVALENT) -> str | None:
    """Why a survivor is an equivalent mutant (``EQUIVALENT``; or message text, with
    ``MESSAGE_TEXT``), or ``None``."""
    removed = [line[1:] for line in lines if line.startswith("-")]
    added = [line[1:] for line in lines if line.startswith("+")]
    if len(removed) != 1 or len(added) != 1:
        return None
    for before, after, why in rules:
        if re.search(before, removed[0]) and re.search(after, added[0]):
            return why
    return None


def _module_of(key: str, modules: list[str]) -> str | None:
    for module in modules:
        dotted = module[: -len(".py")].replace("/", ".")
        if key.startswith(dotted + "."):
            return module
    return None


def report(scope: str) -> dict[str, dict[str, int]]:
    spec = SCOPES[scope]
    work = scratch(scope)
    totals: dict[str, dict[str, int]] = {}
    survivors: list[str] = []
    rechecked_path = work / "rechecked.json"
    rechecked: dict[str, int] = (
        json.loads(rechecked_path.read_text(encoding="utf-8")) if rechecked_path.exists() else {}
    )
    for module in spec.modules:
        meta_path = work / "mutants" / (module + ".meta")
        if not meta_path.exists():
            continue
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        functions = _functions(work / "mutants" / module)
        counts = {
            "killed": 0,
            "killed since": 0,
            "behaviour": 0,
            "message": 0,
            "equivalent": 0,
            "no tests": 0,
            "not run": 0,
        }
        for key, code in sorted(meta["exit_code_by_key"].items()):
            if _module_of(key, spec.modules) != module:
                continue
            if spec.only and not any(fnmatch.fnmatchcase(key, glob) for glob in spec.only):
                continue  # outside the scope's functions
            if code is None:
                counts["not run"] += 1
            elif code in KILLED:
                counts["killed"] += 1
            elif code == SURVIVED:
                kind = classify(functions, key)
                lines = diff(functions, key)
                if kind == "behaviour" and equivalent(lines, MESSAGE_TEXT) is not None:
                    kind = "message"
                if kind == "behaviour" and (
                    equivalent(lines) is not None
                    or key.split("__mutmut_")[0] in IMPORT_TIME
                    or any(
                        fnmatch.fnmatchcase(key, glob)
                        and equivalent(lines, [(before, after, why)]) is not None
                        for glob, before, after, why in IN_FUNCTION
                    )
                ):
                    kind = "equivalent"
                if kind == "behaviour" and rechecked.get(key) in KILLED:
                    kind = "killed since"  # by a test written after the run (``recheck``)
                counts[kind] += 1
                if kind == "behaviour":
                    survivors.append(key + "\n" + "\n".join(lines) + "\n")
            else:
                counts["no tests"] += 1
        totals[module] = counts
    (work / "survivors.txt").write_text("\n".join(survivors), encoding="utf-8")
    for module, c in totals.items():
        killed = c["killed"] + c["killed since"]
        judged = killed + c["behaviour"] + c["no tests"]  # uncovered counts as survived
        score = killed / judged if judged else 1.0
        print(
            f"{module}: {killed}/{judged} killed ({score:.0%}; {c['killed since']} of them by "
            f"tests written after the run), {c['behaviour']} survived, "
            f"{c['message']} message-text and {c['equivalent']} equivalent survivors, "
            f"{c['no tests']} without a covering test, "
            f"{c['not run']} not run"
        )
    print(f"survivors: {work / 'survivors.txt'}")
    return totals


def recheck(scope: str, tests: list[str]) -> None:
    """Plant each behaviour survivor of the scope's last run (``mutmut apply``) in a fresh copy
    of the work tree and run ``tests`` there: the tests written or changed since the run (the
    survivors already survived every other test of the scope). A failing run counts the
    mutant as killed in ``report``. Skipped: mutants of a module the work tree has changed
    since the run (they may no longer apply); run the scope again for those."""
    work = scratch(scope)
    report(scope)  # writes survivors.txt
    names = [
        block.split("\n", 1)[0]
        for block in (work / "survivors.txt").read_text(encoding="utf-8").split("\n\n")
        if block.strip()
    ]
    copy = work / "recheck"
    if copy.exists():
        shutil.rmtree(copy)
    copy.mkdir()
    for name in ("safeguard", "tests"):
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "pyproject.toml", copy / "pyproject.toml")
    env = {**os.environ, "PYTHONPATH": str(copy)}
    path = work / "rechecked.json"
    results: dict[str, int] = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    for name in names:
        module = _module_of(name, SCOPES[scope].modules)
        if module is None or name in results:
            continue  # rechecked already (delete rechecked.json to start over)
        source = (work / module).read_text(encoding="utf-8")
        if (ROOT / module).read_text(encoding="utf-8") != source:
            print(f"{name}: {module} changed since the run; skipped")
            continue
        subprocess.run(
            [PYTHON, "-m", "mutmut", "apply", name], cwd=work, check=True, capture_output=True
        )
        mutated = (work / module).read_text(encoding="utf-8")
        (work / module).write_text(source, encoding="utf-8")
        (copy / module).write_text(mutated, encoding="utf-8")
        try:
            done = subprocess.run(
                [PYTHON, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests],
                cwd=copy,
                env=env,
                capture_output=True,
                check=False,
                timeout=600,
            )
            code = done.returncode
        except subprocess.TimeoutExpired:
            code = 24  # a hang counts as killed, as in mutmut
        finally:
            (copy / module).write_text(source, encoding="utf-8")
        results[name] = code
        print(f"{name}: {'killed' if code in KILLED else f'survived (exit {code})'}")
        path.write_text(json.dumps(results, indent=1), encoding="utf-8")
    report(scope)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("action", choices=["run", "again", "report", "recheck"])
    parser.add_argument("scope", choices=[*SCOPES, "all"])
    parser.add_argument("tests", nargs="*", help="recheck: the tests written since the run")
    parser.add_argument("--max-children", type=int, default=1)
    args = parser.parse_args()
    scopes = list(SCOPES) if args.scope == "all" else [args.scope]
    if args.action == "recheck":
        if args.scope == "all" or not args.tests:
            parser.error("recheck takes one scope and the tests written since its run")
        recheck(args.scope, args.tests)
        return 0
    status = 0
    for scope in scopes:
        if args.action == "run":
            status |= run(scope, args.max_children)
        elif args.action == "again":
            status |= again(scope, args.max_children)
        else:
            report(scope)
    return status


if __name__ == "__main__":
    sys.exit(main())
