"""Redaction at its edges: exception chains that loop or run long, types that cannot be rebuilt
from one message, bytes that are not UTF-8, and nesting exactly as deep as allowed."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from safeguard.guard._redact import (
    MIN_SECRET_LENGTH,
    REDACTED,
    ScrubbedError,
    forget_secrets,
    redact,
    register_secret,
    scrub_text,
    scrubbed_exception,
    secrets_of,
)

SECRET = "edge-secret-0123456789abcdef"
MAX_DEPTH = 32  # safeguard._redact._MAX_DEPTH
MAX_CHAIN = 16  # safeguard._redact._MAX_CHAIN


@pytest.fixture(autouse=True)
def _registered() -> Iterator[None]:
    forget_secrets()
    register_secret(SECRET)
    yield
    forget_secrets()


def test_a_chain_that_loops_is_copied_once_and_loops_the_same_way() -> None:
    first = ValueError(f"first {SECRET}")
    second = KeyError(f"second {SECRET}")
    first.__cause__ = second
    second.__cause__ = first  # a loop: walking it naively never ends
    copy = scrubbed_exception(first)
    assert copy is not first
    assert copy.__cause__ is not None
    assert copy.__cause__.__cause__ is copy
    assert SECRET not in str(copy)
    assert SECRET not in str(copy.__cause__)


def test_a_long_chain_is_cut_after_its_first_seventeen_links() -> None:
    links = [RuntimeError(f"link {i} {SECRET}") for i in range(MAX_CHAIN + 5)]
    for outer, inner in itertools.pairwise(links):
        outer.__cause__ = inner
    copy: BaseException | None = scrubbed_exception(links[0])
    copied = []
    while copy is not None:
        copied.append(str(copy))
        copy = copy.__cause__
    assert copied == [f"link {i} {REDACTED}" for i in range(MAX_CHAIN + 1)]


class NeedsTwo(Exception):
    def __init__(self, first: str, second: str) -> None:
        super().__init__(first, second)


def test_a_type_that_cannot_be_rebuilt_is_named_by_a_stand_in() -> None:
    copy = scrubbed_exception(NeedsTwo(f"key {SECRET}", "x"))
    assert isinstance(copy, ScrubbedError)
    assert copy.type_name == "NeedsTwo"
    assert str(copy).startswith("NeedsTwo: ")
    assert SECRET not in str(copy)


def test_a_stand_in_keeps_its_message_and_the_original_type() -> None:
    stand_in = ScrubbedError("the text", "Original")
    assert stand_in.args == ("the text", "Original")
    assert str(stand_in) == "the text"
    assert stand_in.type_name == "Original"


def test_bytes_that_are_not_utf8_are_scrubbed_not_refused() -> None:
    text = redact(b"\xff\xfe key " + SECRET.encode() + b" \xc3")
    assert isinstance(text, str)
    assert SECRET not in text
    assert REDACTED in text
    assert "\ufffd" in text
    assert redact(bytearray(b"plain")) == "plain"


def _nested(kind: str, depth: int, leaf: Any) -> Any:
    value = leaf
    for _ in range(depth):
        if kind == "list":
            value = [value]
        elif kind == "tuple":
            value = (value,)
        elif kind == "dict":
            value = {"k": value}
        else:
            value = {1: value}  # a key that is not a string
    return value


def _innermost(kind: str, value: Any, depth: int) -> Any:
    for _ in range(depth):
        value = value[0] if kind in ("list", "tuple") else value["k" if kind == "dict" else 1]
    return value


@pytest.mark.parametrize("kind", ["list", "tuple", "dict", "int-keyed dict"])
def test_nesting_is_kept_down_to_the_limit_and_cut_below_it(kind: str) -> None:
    leaf = [7, None, f"x {SECRET}"]
    # The leaf's items at depth MAX_DEPTH: scrubbed and kept.
    inner = _innermost(kind, redact(_nested(kind, MAX_DEPTH - 1, leaf)), MAX_DEPTH - 1)
    assert list(inner) == [7, None, f"x {REDACTED}"]
    # One level deeper: numbers and None are kept at any depth, text is dropped.
    inner = _innermost(kind, redact(_nested(kind, MAX_DEPTH, leaf)), MAX_DEPTH)
    assert list(inner) == [7, None, "[TOO DEEP]"]
    # And the container itself, one more level down, is cut.
    cut = redact(_nested(kind, MAX_DEPTH + 1, leaf))
    assert _innermost(kind, cut, MAX_DEPTH + 1) == "[TOO DEEP]"


def test_a_key_that_is_not_a_string_is_scrubbed_and_its_value_kept() -> None:
    secret_key = SECRET.encode()
    assert redact({secret_key: 5, 3: "three"}) == {REDACTED: 5, 3: "three"}


def test_a_quoted_credential_keeps_its_quotes_so_the_json_stays_json() -> None:
    forget_secrets()  # only the name-based net: the value is no registered secret
    assert scrub_text('{"apiKey": "abc123456", "n": 1}') == f'{{"apiKey": "{REDACTED}", "n": 1}}'
    assert scrub_text("{'secret': 'xyz987654'}") == f"{{'secret': '{REDACTED}'}}"
    assert scrub_text("X-MBX-APIKEY: abc123456") == f"X-MBX-APIKEY: {REDACTED}"


class Coded(Exception):
    """An error built from a number, with no message of its own."""

    def __init__(self, code: int) -> None:
        if not isinstance(code, int):
            raise TypeError("code must be an int")
        super().__init__()
        self.code = code


def test_a_stand_in_for_an_error_without_a_message_is_its_type_name() -> None:
    copy = scrubbed_exception(Coded(7))
    assert isinstance(copy, ScrubbedError)
    assert str(copy) == "Coded"
    assert ScrubbedError("only a message").type_name == ""


def test_a_key_that_is_not_a_string_counts_toward_the_depth_too() -> None:
    inner = {b"k": 1}
    kept = redact(_nested("list", MAX_DEPTH - 1, inner))
    assert _innermost("list", kept, MAX_DEPTH - 1) == {"k": 1}
    cut = redact(_nested("list", MAX_DEPTH, inner))
    assert _innermost("list", cut, MAX_DEPTH) == {"[TOO DEEP]": 1}


def test_a_long_implicit_chain_is_cut_at_the_same_link() -> None:
    links = [RuntimeError(f"ctx {i} {SECRET}") for i in range(MAX_CHAIN + 5)]
    for outer, inner in itertools.pairwise(links):
        outer.__context__ = inner
    copy: BaseException | None = scrubbed_exception(links[0])
    copied = []
    while copy is not None:
        copied.append(str(copy))
        copy = copy.__context__
    assert copied == [f"ctx {i} {REDACTED}" for i in range(MAX_CHAIN + 1)]


def test_every_credential_a_ccxt_exchange_can_carry_is_found() -> None:
    import ccxt

    exchange = ccxt.binanceusdm(
        {
            "apiKey": "k-0123456789",
            "secret": "s-0123456789",
            "password": "p-0123456789",
            "privateKey": "v-0123456789",
            "token": "t-0123456789",
        }
    )
    assert secrets_of(exchange) == [
        "k-0123456789",
        "s-0123456789",
        "p-0123456789",
        "v-0123456789",
        "t-0123456789",
    ]


def test_a_credential_of_the_minimum_length_is_found_and_a_shorter_one_is_not() -> None:
    import ccxt

    exchange = ccxt.binanceusdm({"apiKey": "k" * MIN_SECRET_LENGTH, "secret": "s" * 5})
    assert secrets_of(exchange) == ["k" * MIN_SECRET_LENGTH]


def test_an_exchange_object_carrying_only_some_credential_attributes_is_read_as_is() -> None:
    """Not every exchange object has every credential attribute ccxt's do (a wrapper, an older
    client): the ones it has are found, the others are not there to find."""
    assert secrets_of(SimpleNamespace(apiKey="k-0123456789")) == ["k-0123456789"]


def test_a_secret_that_starts_another_does_not_cut_the_longer_one_short() -> None:
    register_secret("secret99-and-more")
    register_secret("secret99")
    assert scrub_text("x secret99-and-more y") == f"x {REDACTED} y"


def test_a_secret_with_a_slash_and_a_space_is_caught_percent_encoded_too() -> None:
    register_secret("ab/cd ef+g")
    assert scrub_text("q=ab%2Fcd%20ef%2Bg&") == f"q={REDACTED}&"
    assert scrub_text("q=ab%2Fcd+ef%2Bg&") == f"q={REDACTED}&"


def test_a_secret_of_exactly_the_minimum_length_is_accepted() -> None:
    register_secret("abc123")
    assert scrub_text("key abc123") == f"key {REDACTED}"
