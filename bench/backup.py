"""Backup benchmark: neonpro's backup and verify beside plain pg_dump / pg_restore.

    .venv/bin/python bench/backup.py                                # 200,000 / 1,000,000
    .venv/bin/python bench/backup.py --patients 20000 --appointments 100000   # quick

Creates a scratch database ``neonpro_bench_*`` on the server of ``--url`` (only used to
CREATE/DROP databases), loads N patients with real ciphertexts and blind indexes (one
row-change audit event each, sealed) and M appointments spread over professionals, then,
on that same data in one run:

* ours: ``create_backup`` (three dumps in one exported snapshot, manifest with per-table
  row counts and checksums read in that snapshot, audit heads, SHA-256 of each file) and
  ``verify_backup`` (restore into a scratch database, compare every table with the
  manifest, verify every audit chain);
* plain: ``pg_dump --format=custom`` with the same compression level as the login (one
  file), and ``pg_restore --jobs`` of that file into an empty database.

It prints seconds and MB/s of each step and the ratios ours/plain (goal: at most 1.3).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg
from _setup import (
    DEFAULT_ADMIN_URL,
    drop_scratch_database,
    libpq_url,
    load,
    make_settings,
)

from neonpro.adapters.backup.pgtools import Target, tool
from neonpro.bootstrap import Container
from neonpro.services import backup as svc

SEED_PROFESSIONALS = """
INSERT INTO professionals (clinic_id, id, full_name, can_work_weekends)
SELECT c.id, gen_random_uuid(), 'Profissional ' || g, true
FROM clinics c CROSS JOIN generate_series(1, %(pros)s) g
"""
# Round j gives every live patient one appointment with professional n % P of their clinic
# at slot j * ceil(size / P) + n / P: no professional is ever double-booked.
SEED_APPOINTMENTS = """
WITH p AS (
  SELECT id, clinic_id, created_by,
         row_number() OVER (PARTITION BY clinic_id ORDER BY id) - 1 AS n,
         count(*) OVER (PARTITION BY clinic_id) AS size
  FROM patients WHERE deleted_at IS NULL),
pro AS (
  SELECT id, clinic_id, row_number() OVER (PARTITION BY clinic_id ORDER BY id) - 1 AS r
  FROM professionals)
INSERT INTO appointments (clinic_id, id, patient_id, professional_id, start_time, end_time,
                          status, appointment_type, created_by)
SELECT p.clinic_id, gen_random_uuid(), p.id, pro.id, s.t, s.t + interval '30 minutes',
       (ARRAY['completed', 'completed', 'completed', 'cancelled', 'no_show', 'scheduled'])
         [1 + ((p.n + j) %% 6)], 'in_person', p.created_by
FROM p CROSS JOIN generate_series(0, %(rounds)s - 1) j
JOIN pro ON pro.clinic_id = p.clinic_id AND pro.r = p.n %% %(pros)s
CROSS JOIN LATERAL (SELECT timestamptz '2021-01-04 12:00+00'
    + (j * ceil(p.size::numeric / %(pros)s) + p.n / %(pros)s) * interval '30 minutes' AS t) s
LIMIT %(n)s
"""


def seed_appointments(url: str, appointments: int, pros: int) -> float:
    """Appointments by SQL on the server (the row-change triggers are skipped for speed:
    session_replication_role = replica; the patients carry the audit events)."""
    t0 = time.perf_counter()
    with psycopg.connect(libpq_url(url)) as conn:
        conn.execute("SET session_replication_role = replica")
        live = conn.execute("SELECT count(*) FROM patients WHERE deleted_at IS NULL"
                            ).fetchone()[0]  # type: ignore[index]
        conn.execute(SEED_PROFESSIONALS, {"pros": pros})
        rounds = -(-appointments // live)
        conn.execute(SEED_APPOINTMENTS, {"pros": pros, "rounds": rounds, "n": appointments})
        conn.commit()
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) appointments")
        conn.execute("VACUUM (ANALYZE) professionals")
    return time.perf_counter() - t0


def plain_dump(target: Target, major: int, out: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run([str(tool("pg_dump", major)), "--format=custom",
                    f"--compress={svc.COMPRESSION}", "--no-password", f"--file={out}"],
                   env=target.env(), check=True, capture_output=True)
    return time.perf_counter() - t0


def plain_restore(target: Target, major: int, dump: Path, jobs: int) -> float:
    with psycopg.connect(target.with_database("postgres").url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{target.database}" TEMPLATE template0')
    t0 = time.perf_counter()
    subprocess.run([str(tool("pg_restore", major)), "--exit-on-error", "--no-password",
                    f"--jobs={jobs}", f"--dbname={target.database}", str(dump)],
                   env=target.env(), check=True, capture_output=True)
    return time.perf_counter() - t0


def mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--url", default=DEFAULT_ADMIN_URL, help="server (CREATE/DROP only)")
    parser.add_argument("--patients", type=int, default=200_000)
    parser.add_argument("--appointments", type=int, default=1_000_000)
    parser.add_argument("--professionals", type=int, default=40, help="per clinic")
    parser.add_argument("--clinics", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()

    print(f"loading {args.patients:,} patients, {args.appointments:,} appointments ...",
          flush=True)
    data = load(args.url, args.patients, args.clinics, log=True)
    url = data.url
    work = Path(tempfile.mkdtemp(prefix="neonpro-bench-backup-"))
    plain_db = Target.from_url(libpq_url(url)).with_database(
        f"neonpro_bench_plain_{os.getpid()}")
    box = Container(make_settings(url).model_copy(update={"backup_dir": work / "ours"}),
                    database_url=url, keyring=data.keyring)
    try:
        seconds = seed_appointments(url, args.appointments, args.professionals)
        print(f"  appointments in {seconds:.0f} s", flush=True)
        t0 = time.perf_counter()
        sealed = box.seal_audit()
        print(f"  sealed {sealed:,} audit events in {time.perf_counter() - t0:.0f} s", flush=True)
        source = Target.from_url(libpq_url(url))
        with psycopg.connect(source.url()) as conn:
            counts: dict[str, int] = dict(conn.execute(
                "SELECT 'patients', count(*) FROM patients UNION ALL "
                "SELECT 'appointments', count(*) FROM appointments UNION ALL "
                "SELECT 'audit_events', count(*) FROM audit_events").fetchall())
            major = conn.execute("SELECT current_setting('server_version_num')::int / 10000"
                                 ).fetchone()[0]  # type: ignore[index]
            size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]  # type: ignore[index]
        print(f"database: {counts}, {mb(size)} on disk, PostgreSQL {major}", flush=True)

        # plain first, then ours, then plain again: the page cache is warm for all but the
        # first, and the better plain figure is the one compared
        plain_file = work / "plain.dump"
        plain_dump_s = plain_dump(source, major, plain_file)
        plain_file.unlink()
        t0 = time.perf_counter()
        backup = svc.create_backup(box)
        ours_backup_s = time.perf_counter() - t0
        plain_dump_s = min(plain_dump_s, plain_dump(source, major, plain_file))
        plain_bytes = plain_file.stat().st_size
        ours_bytes = sum(f["bytes"] for f in backup.manifest["files"].values())

        plain_restore_s = plain_restore(plain_db, major, plain_file, args.jobs)
        _drop(plain_db)
        t0 = time.perf_counter()
        report = svc.verify_backup(box, backup, jobs=args.jobs)
        ours_verify_s = time.perf_counter() - t0
        if not report.ok:
            print(f"VERIFY FAILED: {report.problems}")
            return 1

        print()
        print(f"{'step':<34}{'seconds':>10}{'size':>14}{'MB/s':>10}")
        rows = [
            ("plain pg_dump -Fc", plain_dump_s, plain_bytes),
            ("ours backup create", ours_backup_s, ours_bytes),
            ("plain pg_restore -j", plain_restore_s, plain_bytes),
            ("ours backup verify", ours_verify_s, ours_bytes),
        ]
        for name, seconds, nbytes in rows:
            print(f"{name:<34}{seconds:>10.1f}{mb(nbytes):>14}{nbytes / 1e6 / seconds:>10.1f}")
        print(f"  ours backup steps: {backup.manifest['timings']}")
        print(f"  ours verify steps: {report.seconds} "
              f"({report.audit_events_verified:,} audit events verified)")
        backup_ratio = ours_backup_s / plain_dump_s
        verify_ratio = ours_verify_s / plain_restore_s
        print(f"ratio backup ours/plain = {backup_ratio:.2f} (goal <= 1.3)")
        print(f"ratio verify ours/plain = {verify_ratio:.2f} (goal <= 1.3; ours also compares "
              "every table and verifies the audit chains)")
        print(f"load average: {os.getloadavg()}")
        return 0 if max(backup_ratio, verify_ratio) <= 1.3 else 2
    finally:
        box.close()
        _drop(plain_db)
        drop_scratch_database(args.url, url)
        shutil.rmtree(work, ignore_errors=True)


def _drop(target: Target) -> None:
    with psycopg.connect(target.with_database("postgres").url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)')


if __name__ == "__main__":
    sys.exit(main())
