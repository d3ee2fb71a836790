"""The fast path of ``audit verify``: every column read as its text output, no per-row objects.

Same checks and reports as ``audit._check_chain`` (which recomputes from typed values and
stays the reference: a test compares both on tricky data). The canonical text is built in
one f-string per row; values are the server's text outputs in UTC/ISO/hex, so ``details`` is
hashed exactly as ``neonpro_audit_canonical`` renders it. Non-ASCII rows are rebuilt field by
field with octet lengths; IPv6 addresses go through the reference formatter.
"""

from __future__ import annotations

import contextlib
import hashlib
import queue
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.types.string import TextLoader

from neonpro.domain.audit_chain import PREFIX, _ip

if TYPE_CHECKING:
    from neonpro.adapters.db.audit import ChainReport

TEXT_TYPES = ("uuid", "timestamptz", "date", "inet", "jsonb", "bytea")
_TS_LEN = 29  # "2025-01-02 03:04:05.123456+00"


def text_mode(conn: psycopg.Connection[Any]) -> None:
    """Load these types as text and pin their output format for this transaction."""
    for name in TEXT_TYPES:
        conn.adapters.register_loader(name, TextLoader)
    conn.execute("SELECT set_config('TimeZone', 'UTC', true), "
                 "set_config('DateStyle', 'ISO, YMD', true), "
                 "set_config('bytea_output', 'hex', true)")


def _ts_text(s: str) -> str:
    """``2025-01-02 03:04:05.12+00`` (UTC, ISO) -> the canonical timestamp."""
    if len(s) >= 22 and s[-3:] == "+00" and s[4] == "-" and s[10] == " ":  # noqa: PLR2004
        body = s[:-3]
        frac = body[20:] if len(body) > 19 else ""  # noqa: PLR2004
        return f"{body[:10]}T{body[11:19]}.{frac:0<6}Z"
    return datetime.fromisoformat(s).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _lp(v: str | None) -> str:
    if v is None:
        return "~"
    return f"{len(v) if v.isascii() else len(v.encode())}:{v}"


def _canonical_slow(fields: tuple[str | None, ...]) -> str:
    return PREFIX + "".join(_lp(f) for f in fields)


def check_text_chain(report: ChainReport, rows: Iterable[tuple[Any, ...]],
                     cut: tuple[int, str] | None) -> None:
    """Verify one chain from text rows; fills ``report`` like ``_check_chain`` does."""
    expected = cut[0] + 1 if cut else 1
    prev: str | None = cut[1] if cut else None
    report.first_seq = expected
    sha256 = hashlib.sha256
    count = 0
    broken = False
    for (clinic, seq, eid, occ, actor, role, action, rtype, res, pref, status, risk, ip, ua,
         session, request, details, retain, stored_prev, stored_hash) in rows:
        if seq != expected:
            report.broken_at = expected
            report.reason = (f"missing event: expected seq {expected}, found {seq} "
                             "(deleted or renumbered)")
            broken = True
            break
        if (None if stored_prev is None else stored_prev[2:]) != prev:
            report.broken_at = seq
            report.reason = "prev_hash does not match the previous event (inserted or reordered)"
            broken = True
            break
        if ip is not None and (":" in ip or "/" in ip):
            ip = _ip(ip)  # noqa: PLW2901  (IPv6 and masks: the reference formatter)
        ts = (f"{occ[:10]}T{occ[11:26]}Z" if len(occ) == _TS_LEN and occ[-3:] == "+00"
              else _ts_text(occ))
        sq = str(seq)
        pref_hex = None if pref is None else pref[2:]
        canon = (f"{PREFIX}{len(clinic)}:{clinic}{len(sq)}:{sq}{len(eid)}:{eid}{len(ts)}:{ts}"
                 f"{'~' if actor is None else f'{len(actor)}:{actor}'}"
                 f"{'~' if role is None else f'{len(role)}:{role}'}"
                 f"{len(action)}:{action}"
                 f"{'~' if rtype is None else f'{len(rtype)}:{rtype}'}"
                 f"{'~' if res is None else f'{len(res)}:{res}'}"
                 f"{'~' if pref_hex is None else f'{len(pref_hex)}:{pref_hex}'}"
                 f"{len(status)}:{status}{len(risk)}:{risk}"
                 f"{'~' if ip is None else f'{len(ip)}:{ip}'}"
                 f"{'~' if ua is None else f'{len(ua)}:{ua}'}"
                 f"{'~' if session is None else f'{len(session)}:{session}'}"
                 f"{'~' if request is None else f'{len(request)}:{request}'}"
                 f"{len(details)}:{details}{len(retain)}:{retain}"
                 f"{'~' if prev is None else f'{len(prev)}:{prev}'}")
        if not canon.isascii():
            canon = _canonical_slow((clinic, sq, eid, ts, actor, role, action, rtype, res,
                                     pref_hex, status, risk, ip, ua, session, request, details,
                                     retain, prev))
        computed = sha256(canon.encode()).hexdigest()
        if stored_hash is None or computed != stored_hash[2:]:
            report.broken_at = seq
            report.reason = "hash does not match the event's content (edited)"
            broken = True
            break
        prev = computed
        expected += 1
        count += 1
    report.sealed = count
    report.head_seq = expected - 1 if count else 0
    report.head_hash = None if broken else prev


def prefetched(cursor: psycopg.ServerCursor[Any], size: int) -> Iterator[tuple[Any, ...]]:
    """The cursor's rows, the next batch fetched by a thread while this one is hashed.

    psycopg releases the GIL while it waits for the server, so the server produces batch
    n+1 while Python hashes batch n (a plain server cursor alternates the two).
    """
    batches: queue.Queue[Any] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def pump() -> None:
        try:
            while not stop.is_set():
                batch = cursor.fetchmany(size)
                batches.put(batch)
                if not batch:
                    return
        except BaseException as exc:  # noqa: BLE001  (handed to the consumer)
            batches.put(exc)

    thread = threading.Thread(target=pump, daemon=True, name="audit-verify-prefetch")
    thread.start()
    try:
        while True:
            batch = batches.get()
            if isinstance(batch, BaseException):
                raise batch
            if not batch:
                return
            yield from batch
    finally:  # a broken chain stops early: let the pump finish its fetch and end
        stop.set()
        while thread.is_alive():
            with contextlib.suppress(queue.Empty):
                batches.get(timeout=0.05)
        thread.join()
