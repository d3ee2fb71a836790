"""Brazilian national holidays and business-day deadlines (pure Python, no I/O).

National holidays (feriados nacionais) of any year:

* fixed: Jan 1 (Confraternização Universal), Apr 21 (Tiradentes), May 1 (Dia do
  Trabalho), Sep 7 (Independência), Oct 12 (Nossa Senhora Aparecida), Nov 2 (Finados),
  Nov 15 (Proclamação da República), Nov 20 (Zumbi e da Consciência Negra, national only
  from 2024 on: Lei 14.759/2023) and Dec 25 (Natal);
* movable: Good Friday (Sexta-feira Santa), two days before Easter Sunday.

Carnival Monday and Tuesday and Corpus Christi are *pontos facultativos* in the federal
calendar (offices may close, nothing obliges them to): they count as holidays only with
``include_optional=True``. The default (False) gives the stricter deadline, which is the
safe reading for a legal time limit. State and municipal holidays are not included.

Holidays are not moved when they fall on a weekend.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

D = TypeVar("D", date, datetime)

GREGORIAN_FROM = 1583  # the first full year of the Gregorian calendar
NOV_20_NATIONAL_FROM = 2024  # Lei 14.759/2023
SATURDAY = 5
END_OF_DAY = time(23, 59, 59)

_FIXED: tuple[tuple[int, int, str], ...] = (
    (1, 1, "Confraternização Universal"),
    (4, 21, "Tiradentes"),
    (5, 1, "Dia do Trabalho"),
    (9, 7, "Independência do Brasil"),
    (10, 12, "Nossa Senhora Aparecida"),
    (11, 2, "Finados"),
    (11, 15, "Proclamação da República"),
    (12, 25, "Natal"),
)


def easter(year: int) -> date:
    """Easter Sunday by the anonymous Gregorian algorithm (Meeus/Jones/Butcher)."""
    if year < GREGORIAN_FROM:
        raise ValueError(f"the Gregorian Easter is defined from {GREGORIAN_FROM} on")
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    leap = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * leap) // 451
    month, day = divmod(h + leap - 7 * m + 114, 31)
    return date(year, month, day + 1)


def good_friday(year: int) -> date:
    return easter(year) - timedelta(days=2)


def national_holidays(year: int, *, include_optional: bool = False) -> dict[date, str]:
    """Every national holiday of ``year`` (date -> Portuguese name), in date order.

    With ``include_optional`` the federal *pontos facultativos* are added: Carnival
    Monday and Tuesday (48 and 47 days before Easter) and Corpus Christi (60 days after).
    """
    days = {date(year, month, day): name for month, day, name in _FIXED}
    if year >= NOV_20_NATIONAL_FROM:
        days[date(year, 11, 20)] = "Dia Nacional de Zumbi e da Consciência Negra"
    sunday = easter(year)
    days[sunday - timedelta(days=2)] = "Sexta-feira Santa"
    if include_optional:
        days[sunday - timedelta(days=48)] = "Carnaval (segunda-feira, ponto facultativo)"
        days[sunday - timedelta(days=47)] = "Carnaval (terça-feira, ponto facultativo)"
        days[sunday + timedelta(days=60)] = "Corpus Christi (ponto facultativo)"
    return dict(sorted(days.items()))


def is_holiday(day: date, *, include_optional: bool = False) -> bool:
    return day in national_holidays(day.year, include_optional=include_optional)


def is_business_day(day: date, *, include_optional: bool = False) -> bool:
    """Monday to Friday and not a national holiday."""
    return day.weekday() < SATURDAY and not is_holiday(day, include_optional=include_optional)


def add_business_days(start: datetime, days: int, zone: ZoneInfo | str, *,
                      include_optional: bool = False) -> datetime:
    """The end (23:59:59, local time) of the ``days``-th business day after ``start``'s day.

    ``start`` is an aware moment (when the clinic learned of something); its calendar day
    is taken in ``zone`` (the clinic's time zone) and does not count, whatever the hour.
    Weekends and national holidays are skipped. With ``days=0`` the deadline is the end of
    the start day itself. The result is aware, in ``zone``.
    """
    if start.tzinfo is None or start.utcoffset() is None:
        raise ValueError("start must be an aware datetime")
    if days < 0:
        raise ValueError("days must not be negative")
    tz = ZoneInfo(zone) if isinstance(zone, str) else zone
    day = start.astimezone(tz).date()
    counted = 0
    while counted < days:
        day += timedelta(days=1)
        if is_business_day(day, include_optional=include_optional):
            counted += 1
    return datetime.combine(day, END_OF_DAY, tzinfo=tz)


def add_years(moment: D, years: int) -> D:
    """``moment`` moved by whole calendar years, never shortening the period on Feb 29.

    Forward, a Feb 29 with no counterpart becomes Mar 1; backward (a look-back window), it
    becomes Feb 28. Works for dates and datetimes alike (the time of day is kept).
    """
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:  # Feb 29 in a year without one
        return moment.replace(year=moment.year + years, month=3, day=1) if years > 0 else (
            moment.replace(year=moment.year + years, day=28))
