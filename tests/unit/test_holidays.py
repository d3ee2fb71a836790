"""Brazilian national holidays, Easter and business-day deadlines against known dates."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from neonpro.domain.holidays import (
    add_business_days,
    add_years,
    easter,
    good_friday,
    is_business_day,
    is_holiday,
    national_holidays,
)

SP = ZoneInfo("America/Sao_Paulo")
MANAUS = ZoneInfo("America/Manaus")

# Published Easter Sundays (Gregorian), including the extremes Mar 22 and Apr 25.
KNOWN_EASTER = {
    1818: date(1818, 3, 22), 1943: date(1943, 4, 25), 2000: date(2000, 4, 23),
    2008: date(2008, 3, 23), 2011: date(2011, 4, 24), 2019: date(2019, 4, 21),
    2023: date(2023, 4, 9), 2024: date(2024, 3, 31), 2025: date(2025, 4, 20),
    2026: date(2026, 4, 5), 2027: date(2027, 3, 28), 2028: date(2028, 4, 16),
    2038: date(2038, 4, 25), 2285: date(2285, 3, 22),
}


@pytest.mark.parametrize(("year", "sunday"), sorted(KNOWN_EASTER.items()))
def test_easter_matches_published_dates(year: int, sunday: date) -> None:
    assert easter(year) == sunday
    assert easter(year).weekday() == 6
    assert good_friday(year) == sunday - timedelta(days=2)


def test_easter_needs_the_gregorian_calendar() -> None:
    with pytest.raises(ValueError, match="Gregorian"):
        easter(1500)


def test_2026_national_holidays() -> None:
    assert list(national_holidays(2026)) == [
        date(2026, 1, 1), date(2026, 4, 3), date(2026, 4, 21), date(2026, 5, 1),
        date(2026, 9, 7), date(2026, 10, 12), date(2026, 11, 2), date(2026, 11, 15),
        date(2026, 11, 20), date(2026, 12, 25),
    ]
    assert national_holidays(2026)[date(2026, 4, 3)] == "Sexta-feira Santa"


def test_november_20_is_national_only_from_2024() -> None:
    assert not is_holiday(date(2023, 11, 20))
    assert is_business_day(date(2023, 11, 20))  # a Monday
    assert is_holiday(date(2024, 11, 20))
    assert not is_business_day(date(2024, 11, 20))  # a Wednesday
    assert len(national_holidays(2023)) == 9
    assert len(national_holidays(2024)) == 10


def test_carnival_and_corpus_christi_are_optional() -> None:
    carnival = (date(2026, 2, 16), date(2026, 2, 17))
    corpus_christi = date(2026, 6, 4)
    regular = national_holidays(2026)
    optional = national_holidays(2026, include_optional=True)
    for day in (*carnival, corpus_christi):
        assert day not in regular
        assert day in optional
        assert is_business_day(day)
        assert not is_business_day(day, include_optional=True)
    assert len(optional) == len(regular) + 3


def test_weekends_are_not_business_days() -> None:
    assert not is_business_day(date(2026, 4, 4))  # Saturday
    assert not is_business_day(date(2026, 4, 5))  # Easter Sunday
    assert is_business_day(date(2026, 4, 6))


def test_deadline_across_good_friday_and_a_weekend() -> None:
    # learned on Thursday 2026-04-02; Fri 3 (Good Friday), Sat 4 and Sun 5 skipped
    learned = datetime(2026, 4, 2, 16, 30, tzinfo=SP)
    due = add_business_days(learned, 3, SP)
    assert due == datetime(2026, 4, 8, 23, 59, 59, tzinfo=SP)
    assert due.tzinfo == SP
    assert add_business_days(learned, 3, "America/Sao_Paulo") == due


def test_the_day_is_taken_in_the_clinic_time_zone() -> None:
    # 01:30 UTC on Friday Nov 20 2026 is still Thursday Nov 19 in São Paulo (UTC-3)
    learned = datetime(2026, 11, 20, 1, 30, tzinfo=UTC)
    # Thu 19 learned; Fri 20 holiday, weekend; Mon 23, Tue 24, Wed 25
    assert add_business_days(learned, 3, SP) == datetime(2026, 11, 25, 23, 59, 59, tzinfo=SP)
    # In 2023 Nov 20 was an ordinary Monday: learned Fri Nov 17 -> Mon 20, Tue 21, Wed 22
    friday = datetime(2023, 11, 17, 10, tzinfo=MANAUS)
    assert add_business_days(friday, 3, MANAUS) == datetime(2023, 11, 22, 23, 59, 59,
                                                              tzinfo=MANAUS)
    # ... and in 2024 a holiday: learned Mon Nov 18 -> Tue 19, (Wed 20 skipped) Thu 21, Fri 22
    monday = datetime(2024, 11, 18, 10, tzinfo=SP)
    assert add_business_days(monday, 3, SP) == datetime(2024, 11, 22, 23, 59, 59, tzinfo=SP)


def test_optional_days_lengthen_the_deadline_only_when_asked() -> None:
    learned = datetime(2026, 2, 13, 9, tzinfo=SP)  # Friday before Carnival
    assert add_business_days(learned, 3, SP).date() == date(2026, 2, 18)
    assert add_business_days(learned, 3, SP, include_optional=True).date() == date(2026, 2, 20)


def test_new_year_and_zero_days() -> None:
    learned = datetime(2026, 12, 31, 23, 0, tzinfo=SP)  # Thursday
    assert add_business_days(learned, 1, SP).date() == date(2027, 1, 4)  # Jan 1, weekend
    assert add_business_days(learned, 0, SP) == datetime(2026, 12, 31, 23, 59, 59, tzinfo=SP)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        add_business_days(datetime(2026, 4, 2, 10), 3, SP)  # noqa: DTZ001
    with pytest.raises(ValueError, match="negative"):
        add_business_days(datetime(2026, 4, 2, 10, tzinfo=SP), -1, SP)


NAIVE_FROM = datetime(2000, 1, 1)  # noqa: DTZ001  (hypothesis bounds are naive)
NAIVE_TO = datetime(2100, 1, 1)  # noqa: DTZ001


@given(st.datetimes(min_value=NAIVE_FROM, max_value=NAIVE_TO, timezones=st.just(SP)),
       st.integers(min_value=1, max_value=30))
def test_the_deadline_is_a_business_day_with_exactly_n_before_it(start: datetime,
                                                                 days: int) -> None:
    due = add_business_days(start, days, SP)
    assert is_business_day(due.date())
    between = [start.date() + timedelta(days=i)
               for i in range(1, (due.date() - start.date()).days + 1)]
    assert sum(is_business_day(d) for d in between) == days


def test_add_years_never_shortens_the_period() -> None:
    assert add_years(date(2026, 4, 8), 5) == date(2031, 4, 8)
    assert add_years(date(2024, 2, 29), 5) == date(2029, 3, 1)
    assert add_years(date(2028, 2, 29), 4) == date(2032, 2, 29)
    moment = datetime(2024, 2, 29, 12, tzinfo=UTC)
    assert add_years(moment, -6) == datetime(2018, 2, 28, 12, tzinfo=UTC)
