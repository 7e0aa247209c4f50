"""Durations and sizes parse the way people write them and print back the same."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifier.units import (
    MAX_DURATION,
    MAX_SIZE,
    format_duration,
    format_duration_exact,
    format_size,
    parse_duration,
    parse_size,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("30s", 30),
        ("5m", 300),
        ("4h", 14400),
        ("1d", 86400),
        ("1h30m", 5400),
        ("1h 30m", 5400),
        ("2w", 1209600),
        ("0", 0),
        (" 90s ", 90),
        ("1.5h", 5400),
    ],
)
def test_parse_duration_accepts_human_spellings(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "30", "5 minutes", "s", "1h-5m", "-5m", "5x"])
def test_parse_duration_rejects_with_an_example_of_the_right_form(text):
    with pytest.raises(ValueError, match="write it like '500ms', '30s'"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0"),
        (0.5, "500ms"),
        (30, "30s"),
        (90, "1m30s"),
        (14400, "4h"),
        (86400, "1d"),
    ],
)
def test_format_duration_prints_the_way_people_write(seconds, text):
    assert format_duration(seconds) == text


@given(st.integers(min_value=0, max_value=10 * 365 * 86400))
def test_whole_second_durations_round_trip(seconds):
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("512KiB", 524288),
        ("10MB", 10_000_000),
        ("1GiB", 1024**3),
        ("4096", 4096),
        (4096, 4096),
        ("1.5GiB", int(1.5 * 1024**3)),
        ("12 kb", 12000),
    ],
)
def test_parse_size_accepts_binary_and_decimal_units(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "KiB", "10 megabytes", "-1", -1, "1.2.3MB"])
def test_parse_size_rejects_nonsense(text):
    with pytest.raises(ValueError, match="not a size"):
        parse_size(text)


@given(st.integers(min_value=0, max_value=2**50))
def test_exact_sizes_round_trip_and_others_read_well(size):
    text = format_size(size)
    if "." in text:
        assert abs(parse_size(text) - size) <= size * 0.05
    else:
        assert parse_size(text) == size


def test_format_size_reads_like_a_person_writes():
    assert format_size(524288) == "512KiB"
    assert format_size(10_000_000) == "10MB"
    assert format_size(8_804_682_957) == "8.2GiB"
    assert format_size(12) == "12B"


@pytest.mark.parametrize(
    "text", ["9" * 300 + "d", "9" * 400 + "s", "36501d", "1" + "0" * 20 + "w"]
)
def test_parse_duration_refuses_what_no_clock_can_hold(text):
    with pytest.raises(ValueError, match="is longer than 36500d, the longest"):
        parse_duration(text)


def test_parse_duration_accepts_up_to_a_century():
    assert parse_duration("36500d") == MAX_DURATION


@pytest.mark.parametrize("text", ["9" * 400 + "GiB", "1048577TiB", 2**64, "9" * 5000])
def test_parse_size_refuses_more_than_an_exbibyte(text):
    with pytest.raises(ValueError, match="is larger than 1048576TiB, the largest"):
        parse_size(text)


def test_parse_size_is_exact_and_drops_a_fraction_of_a_byte():
    assert parse_size("1048576TiB") == MAX_SIZE
    assert parse_size("1.1KiB") == 1126
    assert parse_size("0.5") == 0
    assert parse_size("1.000000000000000000000001KB") == 1000


def test_parse_size_reads_every_digit_that_can_make_a_byte():
    one_byte = "0.0000000000009094947017729282379150390625TiB"  # 1 / 2**40

    assert parse_size(one_byte) == 1
    assert parse_size(one_byte.replace("625TiB", "624TiB")) == 0
    assert parse_size(one_byte.replace("TiB", "0" * 5000 + "1TiB")) == 1
    assert parse_size("0" * 5000 + "1.5KiB") == 1536
    assert parse_size("1048575.9999999999999999999999999TiB") == MAX_SIZE - 1
    assert parse_size("1048576.0000000000000000000000000TiB") == MAX_SIZE


@given(st.floats(min_value=0, max_value=MAX_DURATION))
def test_exact_duration_text_reads_back_as_the_same_number(seconds):
    assert parse_duration(format_duration_exact(seconds)) == seconds


def test_exact_duration_text_is_the_human_form_when_that_is_exact():
    assert format_duration_exact(5400) == "1h30m"
    assert format_duration_exact(0.25) == "250ms"
    assert format_duration_exact(1.0005) == "1.0005s"


def test_format_duration_of_infinity_does_not_raise():
    assert format_duration(float("inf")) == "inf"
