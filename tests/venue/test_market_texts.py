"""A market's printed prices and quantities, and the rounded floats its fills record, are
remembered (answers and fills meet the same few numbers again and again); what it remembers
must be exactly what ``format`` and ``round`` give, and stay bounded however many distinct
numbers pass."""

from __future__ import annotations

from dataclasses import replace

from safeguard.venue._markets import _TEXTS_CAP, DEFAULT_MARKETS


def test_a_remembered_price_or_quantity_prints_what_format_prints() -> None:
    spec = replace(DEFAULT_MARKETS["BTCUSDT"])  # a fresh market: its tables start empty
    counts = [1, 7, 10, 123_456, 900_001, 10**9 + 3]
    for _ in range(2):  # the first pass fills the tables, the second reads them
        for count in counts:
            assert spec.fmt_price(count) == format(count * spec.tick_size, spec.price_format)
            assert spec.fmt_qty(count) == format(count * spec.step_size, spec.qty_format)
            price = round(count * spec.tick_size, spec.price_precision)
            assert repr(spec.price_of(count)) == repr(price)
            qty = round(-count * spec.step_size, spec.quantity_precision)
            assert repr(spec.qty_of(-count)) == repr(qty)
    assert set(spec.price_texts) == set(counts) == set(spec.qty_texts)
    assert set(spec.price_values) == set(counts) == {-count for count in spec.qty_values}


def test_the_printed_numbers_tables_stay_bounded_and_right_past_their_cap() -> None:
    spec = replace(DEFAULT_MARKETS["ETHUSDT"])
    for count in range(1, 3 * _TEXTS_CAP):
        assert spec.fmt_price(count) == format(count * spec.tick_size, spec.price_format)
        assert spec.fmt_qty(count) == format(count * spec.step_size, spec.qty_format)
        assert len(spec.price_texts) <= _TEXTS_CAP
        assert len(spec.qty_texts) <= _TEXTS_CAP
        assert spec.price_of(count) == round(count * spec.tick_size, spec.price_precision)
        assert len(spec.price_values) <= _TEXTS_CAP
    # What was forgotten prints the same when asked again.
    assert spec.fmt_price(1) == format(spec.tick_size, spec.price_format)


def test_the_tables_are_no_part_of_a_markets_identity() -> None:
    spec = replace(DEFAULT_MARKETS["SOLUSDT"])
    twin = replace(spec)
    spec.fmt_price(12_345)
    assert spec == twin
    assert hash(spec) == hash(twin)
    assert "texts" not in repr(spec)
