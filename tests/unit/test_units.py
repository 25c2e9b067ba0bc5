"""Durations and sizes in flags: one parser each for every command (``reconciler.units``)."""

from __future__ import annotations

import pytest

from reconciler.errors import UsageError
from reconciler.units import parse_duration, parse_size


def test_sizes_parse_as_people_write_them() -> None:
    assert parse_size("2GB", "--max-size") == 2 * 10**9
    assert parse_size("500mb", "--max-size") == 500 * 10**6
    assert parse_size("1.5G", "--max-size") == 1_500_000_000
    assert parse_size("10GiB", "--max-size") == 10 * 2**30
    assert parse_size("4096", "--max-size") == 4096
    for bad in ("2 parsecs", "-1GB", ""):
        with pytest.raises(UsageError, match="is not a size"):
            parse_size(bad, "--max-size")


def test_every_duration_flag_reads_the_same_units() -> None:
    """The agent's interval and the cache's ages take the same units, day and week included."""
    for text, seconds in (("500ms", 0.5), ("30s", 30), ("5m", 300), ("12h", 43_200), ("30d", 2_592_000), ("2w", 1_209_600), ("1.5h", 5400)):
        assert parse_duration(text, "--interval") == seconds
        assert parse_duration(text, "--older-than", bare_seconds=False, zero=True) == seconds


def test_a_bare_number_is_seconds_for_an_interval_but_only_zero_for_an_age() -> None:
    assert parse_duration("0.5", "--interval") == 0.5
    assert parse_duration("0", "--keep-recent", bare_seconds=False, zero=True) == 0.0
    assert parse_duration("0s", "--keep-recent", bare_seconds=False, zero=True) == 0.0
    with pytest.raises(UsageError, match="'30' is not a duration") as refused:
        parse_duration("30", "--older-than", example="30d", bare_seconds=False, zero=True)
    assert "e.g. --older-than 30d" in (refused.value.hint or "")


def test_an_interval_must_be_positive_and_nonsense_is_one_clear_message() -> None:
    for bad in ("0", "0s", "-5m", "soon", "5 minutes", ""):
        with pytest.raises(UsageError, match="is not a duration") as refused:
            parse_duration(bad, "--interval")
        assert "positive duration" in (refused.value.hint or "")
