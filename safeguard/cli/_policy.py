"""``safeguard policy``: print the effective policy, or the reference of every key.

The README's policy reference is this command's ``--reference`` output (a test keeps the two
identical), so the documentation cannot drift from the code.
"""

from __future__ import annotations

import argparse
import json
import types
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from safeguard._config import Policy


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "policy",
        help="print the effective policy (TOML file + SAFEGUARD_* environment) or its reference",
        description="Print the effective policy as JSON, or the reference of every key.",
    )
    parser.add_argument("--policy", metavar="FILE", help="policy TOML file to load")
    parser.add_argument(
        "--reference", action="store_true", help="print every key with its default (Markdown)"
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    if args.reference:
        print(policy_reference_markdown(), end="")
        return 0
    policy = Policy.load(args.policy)
    payload = policy.model_dump(mode="json")
    payload["credentials"] = {
        name: ("**********" if value is not None else None)
        for name, value in payload["credentials"].items()
    }
    print(json.dumps({"version": policy.version, "policy": payload}, indent=2))
    return 0


def policy_reference_markdown() -> str:
    """Every policy key as Markdown tables, one per section, with defaults and purpose."""
    lines: list[str] = []
    top_level: list[tuple[str, FieldInfo]] = []
    for name, info in Policy.model_fields.items():
        model = _model_of(info.annotation)
        if model is None:
            top_level.append((name, info))
            continue
        _section(lines, name, model, info.description or "")
    if top_level:
        lines.append("### Top level\n")
        lines.append("| key | default | what it protects against |")
        lines.append("|---|---|---|")
        for name, info in top_level:
            lines.append(f"| `{name}` | {_default(info)} | {_one_line(info.description)} |")
        lines.append("")
    return "\n".join(lines)


def _section(lines: list[str], path: str, model: type[BaseModel], description: str) -> None:
    lines.append(f"### `[{path}]`\n")
    if description:
        lines.append(f"{_one_line(description)}\n")
    nested: list[tuple[str, type[BaseModel], str]] = []
    lines.append("| key | default | what it protects against |")
    lines.append("|---|---|---|")
    for name, info in model.model_fields.items():
        sub = _model_of(info.annotation)
        if sub is not None:
            nested.append((f"{path}.{name}", sub, info.description or ""))
            continue
        lines.append(f"| `{name}` | {_default(info)} | {_one_line(info.description)} |")
    lines.append("")
    for sub_path, sub, sub_description in nested:
        _section(lines, sub_path, sub, sub_description)


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (Union, types.UnionType):
        for arg in get_args(annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                return arg
    return None


def _default(info: FieldInfo) -> str:
    extra = info.json_schema_extra
    if isinstance(extra, dict) and isinstance(extra.get("shown_default"), str):
        return f"`{extra['shown_default']}`"  # a default that depends on the machine
    value = info.get_default(call_default_factory=True)
    if value is None:
        return "off"
    if isinstance(value, BaseModel):
        return "(section)"
    if isinstance(value, tuple | list):
        return "`" + json.dumps([_plain(v) for v in value]) + "`"
    return f"`{_plain(value)}`"


def _plain(value: Any) -> Any:
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split()).replace("|", "\\|")


__all__ = ["policy_reference_markdown", "register"]
