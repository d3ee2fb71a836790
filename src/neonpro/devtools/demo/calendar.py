"""The calendar in memory: every patient's wished visits, and where they fit (working days,
shifts, breaks, buffers, daily limits, what is already booked)."""

from __future__ import annotations

from neonpro.devtools.demo.reference import GRID, HOLIDAYS, SATURDAY, SATURDAY_CLOSE, SPECIALTIES
from neonpro.devtools.demo.state import Booking, Prof, Run


class Calendar(Run):
    """Plans visits and finds free slots; the database is not asked."""

    def plan(self) -> list[tuple[int, int, int, str]]:
        """Every patient's wished visits: (day, start minute, patient, service), sorted."""
        rng, horizon = self.rng, self.history_days + self.future_days
        visits: list[tuple[int, int, int, str]] = []
        for p in self.patients:
            spec = SPECIALTIES[self.profs[p.prof].specialty]
            interval = spec.interval_days * rng.uniform(0.75, 1.5)
            early = rng.random() < 0.55  # noqa: PLR2004
            day = rng.randrange(min(45, horizon) if early else horizon)
            service = spec.first
            while day < horizon:
                start = p.preferred + rng.choice((-60, -30, 0, 0, 0, 30, 60))
                visits.append((day, start, p.index, service))
                if day >= self.history_days:
                    break  # one future appointment booked at most
                day += max(7, round(interval * rng.uniform(0.7, 1.3)))
                service = rng.choice(spec.repeat)
                if day >= self.history_days and rng.random() < 0.25:  # noqa: PLR2004
                    break  # the next visit is not booked yet
        visits.sort()
        return visits

    # ------------------------------------------------------------ the calendar
    def works(self, prof: Prof, day: int) -> bool:
        when = self.date_of(day)
        weekday = when.weekday()
        if (when.month, when.day) in HOLIDAYS or weekday > SATURDAY:
            return False
        return weekday < SATURDAY or prof.saturdays

    def candidates(self, prof: Prof, day: int, preferred: int, minutes: int) -> list[int]:
        if not self.works(prof, day):
            return []
        close = prof.end if self.date_of(day).weekday() < SATURDAY else min(prof.end,
                                                                              SATURDAY_CLOSE)
        grid = range(prof.start, close - minutes + 1, GRID)
        ordered = [m for m in grid if m >= preferred] + [m for m in reversed(grid)
                                                         if m < preferred]
        busy = self.busy.get((prof.index, day), [])
        if len(busy) >= prof.max_daily:
            return []
        return [m for m in ordered if self.fits(prof, busy, m, m + minutes)]

    @staticmethod
    def fits(prof: Prof, busy: list[tuple[int, int]], start: int, end: int) -> bool:
        if start < prof.break_end and prof.break_start < end:
            return False
        return all(not (start < e + prof.buffer and s < end + prof.buffer) for s, e in busy)

    def occupy(self, prof: int, day: int, start: int, end: int) -> None:
        self.busy.setdefault((prof, day), []).append((start, end))

    def free(self, b: Booking) -> None:
        self.busy[(b.prof, b.day)].remove((b.start, b.start + b.minutes))
