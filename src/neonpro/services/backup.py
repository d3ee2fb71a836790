"""Logical backups: create, verify, restore, prune, drill (docs/operations.md).

A backup is a directory ``<NEONPRO_BACKUP_DIR>/<id>/`` holding

* ``schema.dump``: the structure (``pg_dump --format=custom --schema-only``) read as the
  owner, who owns it;
* ``data.dump``: the rows, dumped as the service role (row-level security is forced, so
  the owner alone would dump nothing), every table the service role may read;
* ``owner-data.dump``: the rest, only the owner may read them (the pseudonymisation pads
  of the audit trail, the migration head), dumped as the owner;

all three in one exported snapshot, compressed, and encrypted if a key is set;
* ``erasure-ledger.json``: every erasure decided so far (ids and legal decisions only), so
  a restore of an *older* backup can re-apply erasures made after it;
* ``manifest.json``, written last: SHA-256 and size of each file, migration head, row count
  and checksum of every table and the audit chain heads (all read in pg_dump's own
  snapshot), tool versions, start and end time; ``verify.json`` once verified.

A directory without a manifest is an interrupted backup: never listed, never restored.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import structlog
from psycopg import sql

from neonpro import __version__
from neonpro.adapters.backup import snapshot as snap
from neonpro.adapters.backup.pgtools import Target, ToolError, _major, last_line, tool, version
from neonpro.adapters.backup.stream import (
    CorruptBackup,
    HashingWriter,
    check_file,
    decrypt_file,
    parse_key,
    sha256_file,
    write_atomically,
)
from neonpro.adapters.db import migrate, restore_hold
from neonpro.adapters.db.audit import verify_chains
from neonpro.adapters.db.database import Database
from neonpro.adapters.db.health import check_health
from neonpro.adapters.db.security import Roles, bootstrap_roles_sql
from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor, SystemActors
from neonpro.domain.errors import OperationFailed
from neonpro.domain.vocabulary import AuditAction, AuditResource, AuditStatus, RiskLevel
from neonpro.services.erasure import reapply_erasures

log = structlog.get_logger(__name__)
T = TypeVar("T")

FORMAT = 1
COMPRESSION = "1"  # gzip level 1 (every pg_dump since 15 has gzip; level 1 is ~4x level 6)
SCHEMA, DATA, OWNER_DATA, LEDGER, MANIFEST, VERIFIED = (
    "schema.dump", "data.dump", "owner-data.dump", "erasure-ledger.json", "manifest.json",
    "verify.json")


class BackupError(OperationFailed):
    """A backup step failed; the message is safe to show (no personal data)."""


class RestoreRefused(BackupError):
    """The target database is not empty and ``force`` was not given."""


# ---------------------------------------------------------------------------- catalog


@dataclass(frozen=True)
class Backup:
    id: str
    path: Path
    manifest: dict[str, Any]

    @property
    def finished_at(self) -> datetime:
        return datetime.fromisoformat(self.manifest["finished_at"])

    @property
    def snapshot_at(self) -> datetime:
        return datetime.fromisoformat(self.manifest["snapshot_at"])

    @property
    def verification(self) -> dict[str, Any] | None:
        file = self.path / VERIFIED
        if not file.is_file():
            return None
        data: dict[str, Any] = json.loads(file.read_text())
        return data

    @property
    def verified(self) -> bool:
        v = self.verification
        return bool(v and v.get("ok"))

    def summary(self) -> dict[str, Any]:
        m = self.manifest
        return {"id": self.id, "finished_at": m["finished_at"], "encrypted": m["encrypted"],
                "bytes": sum(f["bytes"] for f in m["files"].values()),
                "migration_head": m["migration_head"],
                "rows": sum(t["rows"] for t in m["tables"].values()),
                "verified": self.verified}


def catalog(directory: Path) -> list[Backup]:
    """Every complete backup in ``directory``, oldest first."""
    if not directory.is_dir():
        return []
    out = []
    for child in sorted(directory.iterdir()):
        manifest = child / MANIFEST
        if child.is_dir() and manifest.is_file():
            try:
                data = json.loads(manifest.read_text())
            except (OSError, ValueError):
                log.warning("backup_manifest_unreadable", backup=child.name)
                continue
            out.append(Backup(child.name, child, data))
    out.sort(key=lambda b: b.finished_at)
    return out


def find(directory: Path, backup_id: str) -> Backup:
    for backup in catalog(directory):
        if backup.id == backup_id:
            return backup
    shown = repr(backup_id) if _BACKUP_ID.fullmatch(backup_id) else "(not a backup id)"
    raise BackupError(f"no complete backup {shown} in {directory}")


# what _new_id makes: a message may repeat one, never what someone typed instead
_BACKUP_ID = re.compile(r"[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}")


# ---------------------------------------------------------------------------- helpers


def _roles(container: Container) -> Roles:
    return container.database.roles


def _key(container: Container) -> bytes | None:
    secret = container.settings.backup_key
    return None if secret is None else parse_key(secret.get_secret_value())


def _source(container: Container) -> Target:
    return Target.from_url(container.database.owner_url)


def _run(args: list[str], target: Target, what: str, *,
         stdout: Callable[[bytes], None] | None = None) -> None:
    """Run a PostgreSQL tool; stream its stdout to ``stdout`` if given."""
    proc = subprocess.Popen(  # noqa: S603  (fixed binaries, no shell)
        args, env=target.env(), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE if stdout else subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = proc.stderr
    assert stderr is not None  # noqa: S101
    errors: list[bytes] = []
    reader = threading.Thread(target=lambda: errors.append(stderr.read()), daemon=True)
    reader.start()
    try:
        if stdout is not None:
            assert proc.stdout is not None  # noqa: S101
            while block := proc.stdout.read(1 << 20):
                stdout(block)
    except BaseException:
        proc.kill()  # e.g. the disk is full: never leave a dump running behind us
        proc.wait()
        raise
    code = proc.wait()
    reader.join()
    if code != 0:
        raise BackupError(f"{what} failed: {last_line(b''.join(errors))}")


def _admin(target: Target) -> psycopg.Connection[Any]:
    """A connection to the maintenance database of ``target``'s server."""
    return psycopg.connect(target.with_database("postgres").url(), autocommit=True,
                           application_name="neonpro-backup")


def _database_exists(target: Target) -> bool:
    with _admin(target) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                           (target.database,)).fetchone()
    return row is not None


def _is_empty(target: Target) -> bool:
    with snap.connect(target) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') "
            "AND n.nspname NOT LIKE 'pg_toast%%' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')"
        ).fetchone()
    return row is not None and row[0] == 0


def _create_database(target: Target, *, replace: bool) -> None:
    with _admin(target) as conn:
        name = sql.Identifier(target.database)
        if replace:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(name))


def drop_database(target: Target) -> None:
    with _admin(target) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                     .format(sql.Identifier(target.database)))


def _ensure_roles(target: Target, roles: Roles) -> None:
    """Roles are cluster-wide: create them (idempotently) before any grant is restored."""
    with _admin(target) as conn:
        conn.execute(bootstrap_roles_sql(roles).encode())


def record_event(container: Container, action: AuditAction, resource_id: str,
                 details: dict[str, Any], *, ok: bool = True,
                 actor: Actor = SystemActors.BACKUP) -> None:
    """Record a backup event in ``container``'s database, and seal it."""
    uow = container.service_uow(actor)
    with uow:
        uow.audit.record(action, AuditResource.BACKUP, resource_id, risk=RiskLevel.HIGH,
                         status=AuditStatus.SUCCESS if ok else AuditStatus.FAILURE,
                         details=details)
        uow.commit()
    container.seal_audit(actor)


def _now() -> datetime:
    return datetime.now(UTC)


def _new_id() -> str:
    return _now().strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def _write_json(path: Path, data: Any) -> None:
    write_atomically(path, json.dumps(data, indent=2, default=str).encode())


# ---------------------------------------------------------------------------- create


@dataclass
class Timings:
    steps: dict[str, float] = field(default_factory=dict)

    def timed(self, name: str, fn: Callable[..., T], *args: Any) -> T:
        with self.step(name):
            return fn(*args)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.steps[name] = round(time.perf_counter() - start, 3)


def _dump(args: list[str], target: Target, path: Path, key: bytes | None,
          what: str) -> dict[str, Any]:
    if key is None:
        _run([*args, f"--file={path}"], target, what)
        path.chmod(0o600)
        return {"name": path.name, "sha256": sha256_file(path), "bytes": path.stat().st_size}
    writer = HashingWriter(path, key)
    try:
        _run(args, target, what, stdout=writer.write)
    except BaseException:
        writer.abort()
        raise
    digest = writer.close()
    return {"name": path.name, "sha256": digest, "bytes": writer.size}


def create_backup(container: Container, *, directory: Path | None = None,
                  actor: Actor = SystemActors.BACKUP) -> Backup:
    """Dump the database (service role, one snapshot) and write the manifest last."""
    settings = container.settings
    directory = directory or settings.backup_dir
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    roles, key, source = _roles(container), _key(container), _source(container)
    backup_id = _new_id()
    work = directory / f"{backup_id}.partial"
    work.mkdir(mode=0o700)
    timings = Timings()
    started = _now()
    try:
        with snap.snapshot(source) as (conn, snapshot_id):
            row = conn.execute("SELECT now(), current_setting('server_version'), "
                               "current_setting('server_version_num')::int / 10000").fetchone()
            assert row is not None  # noqa: S101
            snapshot_at, server_version, major = row
            pg_dump = tool("pg_dump", major)
            common = [str(pg_dump), "--format=custom", f"--compress={COMPRESSION}",
                      f"--snapshot={snapshot_id}", "--no-password"]
            owner_only = snap.owner_only_tables(conn, roles)
            dumps = [
                (SCHEMA, [*common, f"--role={roles.owner}", "--schema-only"]),
                (DATA, [*common, f"--role={roles.service}", "--data-only",
                        *(f"--exclude-table=public.{t}" for t in owner_only)]),
                (OWNER_DATA, [*common, f"--role={roles.owner}", "--data-only",
                              "--enable-row-security",
                              *(f"--table=public.{t}" for t in owner_only)]),
            ]
            # the three dumps run side by side while this transaction reads the manifest
            with ThreadPoolExecutor(max_workers=len(dumps)) as pool:
                futures = {name.removesuffix(".dump"): pool.submit(
                    _timed_dump, timings, args, source, work / name, key)
                    for name, args in dumps}
                with timings.step("manifest_stats"):
                    tables = snap.table_stats(conn, roles)
                    heads = snap.audit_heads(conn, roles)
                    head = snap.migration_head(conn)
                    entries = snap.ledger(conn, roles)
                files: dict[str, Any] = {k: f.result() for k, f in futures.items()}
        _write_json(work / LEDGER, entries)
        files["ledger"] = {"name": LEDGER, "sha256": sha256_file(work / LEDGER),
                           "bytes": (work / LEDGER).stat().st_size}
        manifest = {
            "format": FORMAT, "id": backup_id, "source": source.describe(),
            "started_at": started.isoformat(), "snapshot_at": snapshot_at.isoformat(),
            "finished_at": _now().isoformat(), "server_version": server_version,
            "server_major": major,
            "tools": {"pg_dump": version(pg_dump), "pg_dump_major": _major(pg_dump),
                      "neonpro": __version__},
            "compression": COMPRESSION, "encrypted": key is not None,
            "migration_head": head, "files": files, "tables": tables, "audit": heads,
            "erasure_ledger_entries": len(entries), "timings": timings.steps,
        }
        _write_json(work / MANIFEST, manifest)
        final = directory / backup_id
        work.rename(final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        with suppress(Exception):
            record_event(container, AuditAction.BACKUP, backup_id, {"phase": "create"},
                         ok=False, actor=actor)
        raise
    record_event(container, AuditAction.BACKUP, backup_id, {
        "phase": "create", "bytes": sum(f["bytes"] for f in files.values()),
        "tables": len(tables), "encrypted": key is not None}, actor=actor)
    log.info("backup_created", backup=backup_id, seconds=timings.steps)
    return Backup(backup_id, final, manifest)


def _timed_dump(timings: Timings, args: list[str], source: Target, path: Path,
                key: bytes | None) -> dict[str, Any]:
    with timings.step(f"pg_dump {path.name}"):
        return _dump(args, source, path, key, f"pg_dump ({path.name})")


# ---------------------------------------------------------------------------- restore core


def check_files(backup: Backup) -> None:
    """Every file present, with its manifest size and SHA-256: ``CorruptBackup`` otherwise."""
    if backup.manifest.get("format") != FORMAT:
        raise CorruptBackup(f"backup {backup.id} has an unknown manifest format")
    for entry in backup.manifest["files"].values():
        check_file(backup.path / entry["name"], entry["sha256"], entry["bytes"])


DUMPS = (SCHEMA, DATA, OWNER_DATA)


@contextmanager
def _plain_files(backup: Backup, key: bytes | None) -> Iterator[dict[str, Path]]:
    """The dump files ready for pg_restore (decrypted into a private temp dir if needed)."""
    if not backup.manifest["encrypted"]:
        yield {name: backup.path / name for name in DUMPS}
        return
    if key is None:
        raise BackupError(f"backup {backup.id} is encrypted: set NEONPRO_BACKUP_KEY")
    with tempfile.TemporaryDirectory(prefix="neonpro-restore-", dir=backup.path.parent) as tmp:
        plain = {name: Path(tmp) / name for name in DUMPS}
        for name, path in plain.items():
            decrypt_file(backup.path / name, path, key)
        yield plain


def _server_major(target: Target) -> int:
    with snap.connect(target) as conn:
        row = conn.execute("SELECT current_setting('server_version_num')::int / 10000"
                           ).fetchone()
    return int(row[0]) if row else 0


def _restore_files(target: Target, files: dict[str, Path], jobs: int,
                   manifest: dict[str, Any]) -> None:
    """Structure, then rows (service's and owner's), then indexes, constraints, triggers
    and policies: triggers do not fire on restored rows, indexes are built once."""
    major = _server_major(target)
    if major < manifest["server_major"]:
        raise BackupError(f"backup {manifest['id']} comes from PostgreSQL "
                          f"{manifest['server_major']}: it cannot go into PostgreSQL {major}")
    pg_restore = tool("pg_restore", major, at_least=manifest["tools"]["pg_dump_major"])
    base = [str(pg_restore), "--exit-on-error", "--no-password",
            f"--dbname={target.database}"]
    _run([*base, "--section=pre-data", str(files[SCHEMA])], target, "pg_restore (schema)")
    _run([*base, f"--jobs={jobs}", str(files[DATA])], target, "pg_restore (data)")
    _run([*base, str(files[OWNER_DATA])], target, "pg_restore (owner data)")
    _run([*base, f"--jobs={jobs}", "--section=post-data", str(files[SCHEMA])], target,
         "pg_restore (indexes, constraints)")


def compare(backup: Backup, target: Target, roles: Roles) -> list[str]:
    """What differs between the manifest and ``target`` (row counts, checksums, heads)."""
    problems = []
    expected = backup.manifest["tables"]
    with snap.connect(target) as conn:
        tables = snap.table_stats(conn, roles, {t: v.get("method", "md5")
                                                for t, v in expected.items()})
        heads = snap.audit_heads(conn, roles)
        conn.rollback()
    # PostgreSQL's hash functions are only promised within one major version
    hashes_comparable = _server_major(target) == backup.manifest["server_major"]
    for name in sorted(set(expected) | set(tables)):
        want, got = expected.get(name), tables.get(name)
        if want is None or got is None:
            problems.append(f"table {name}: {'missing' if got is None else 'unexpected'}")
        elif want["rows"] != got["rows"]:
            problems.append(f"table {name}: {got['rows']} rows, manifest says {want['rows']}")
        elif want["checksum"] != got["checksum"] and (
                hashes_comparable or got["method"] != "hash64"):
            problems.append(f"table {name}: checksum differs from the manifest")
    if heads["chains"] != backup.manifest["audit"]["chains"]:
        problems.append("audit chain heads differ from the manifest")
    return problems


# ---------------------------------------------------------------------------- verify


@dataclass
class VerifyReport:
    backup_id: str
    ok: bool
    problems: list[str]
    seconds: dict[str, float]
    audit_events_verified: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"backup": self.backup_id, "ok": self.ok, "problems": self.problems,
                "seconds": self.seconds, "audit_events_verified": self.audit_events_verified,
                "verified_at": _now().isoformat()}


def _scratch(container: Container, label: str) -> Target:
    return _source(container).with_database(f"neonpro_{label}_{uuid.uuid4().hex[:12]}")


def verify_backup(container: Container, backup: Backup, *, jobs: int = 2,
                  actor: Actor = SystemActors.BACKUP) -> VerifyReport:
    """Restore into a scratch database, compare with the manifest, verify the audit chains."""
    timings = Timings()
    problems: list[str] = []
    events = 0
    scratch = _scratch(container, "verify")
    try:
        with timings.step("checksums"):
            check_files(backup)
        _ensure_roles(scratch, _roles(container))
        _create_database(scratch, replace=False)
        with timings.step("pg_restore"), _plain_files(backup, _key(container)) as files:
            _restore_files(scratch, files, jobs, backup.manifest)
        # two independent reads of the restored data, side by side
        with ThreadPoolExecutor(max_workers=2) as pool:
            compared = pool.submit(timings.timed, "compare", compare, backup, scratch,
                                   _roles(container))
            audited = pool.submit(timings.timed, "audit_verify", _verify_audit, container,
                                  scratch)
            problems += compared.result()
            events, chain_problems = audited.result()
            problems += chain_problems
    except (CorruptBackup, BackupError, ToolError) as exc:
        problems.append(str(exc))
    finally:
        with suppress(psycopg.Error):
            drop_database(scratch)
    report = VerifyReport(backup.id, not problems, problems, timings.steps, events)
    _write_json(backup.path / VERIFIED, report.as_dict())
    with suppress(Exception):
        record_event(container, AuditAction.VERIFY, backup.id, {
            "ok": report.ok, "problems": len(problems)}, ok=report.ok, actor=actor)
    return report


def _verify_audit(container: Container, target: Target) -> tuple[int, list[str]]:
    db = Database(container.settings, url=target.url())
    try:
        reports = verify_chains(db, SystemActors.BACKUP, container.keyring)
    finally:
        db.close()
    problems = [f"audit chain of clinic {r.clinic_id} broken at {r.broken_at}: {r.reason}"
                for r in reports if r.broken_at is not None]
    return sum(r.sealed for r in reports), problems


# ---------------------------------------------------------------------------- restore


@dataclass
class RestoreReport:
    backup_id: str
    target: str
    ok: bool
    seconds: dict[str, float]
    problems: list[str]
    reapplied_erasures: int
    health: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    erasures_proven: bool = True
    held: bool = False  # closed to the application role until ``finish`` is run
    finish: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"backup": self.backup_id, "target": self.target, "ok": self.ok,
                "seconds": self.seconds, "problems": self.problems,
                "warnings": self.warnings, "reapplied_erasures": self.reapplied_erasures,
                "erasures_proven": self.erasures_proven, "held": self.held,
                "finish": self.finish, "health_ok": self.health.get("ok")}


def _ledger_from(target: Target, roles: Roles,
                 warnings: list[str] | None = None) -> list[dict[str, Any]] | None:
    """The erasure ledger of a live database. Unreadable: with ``warnings``, a warning
    is added and None returned; without, ``BackupError`` (never silently nothing)."""
    try:
        with snap.connect(target) as conn:
            return snap.ledger(conn, roles)
    except psycopg.Error as exc:
        message = (f"the erasure ledger of {target.describe()} could not be read "
                   f"({type(exc).__name__}): erasures recorded only there are not re-applied")
        if warnings is None:
            raise BackupError(message + "; nothing was changed") from None
        warnings.append(message)
        log.warning("erasure_ledger_unreadable", database=target.describe(),
                    error=type(exc).__name__)
        return None


def later_ledgers(backup: Backup) -> list[dict[str, Any]]:
    """Ledger entries from every backup taken after ``backup`` (the restore re-applies them)."""
    entries: list[dict[str, Any]] = []
    for other in catalog(backup.path.parent):
        if other.finished_at > backup.finished_at:
            entries += _backup_ledger(other)
    return entries


def _backup_ledger(backup: Backup) -> list[dict[str, Any]]:
    file = backup.path / LEDGER
    info = backup.manifest["files"].get("ledger")
    if info and file.is_file() and sha256_file(file) == info["sha256"]:
        data: list[dict[str, Any]] = json.loads(file.read_text())
        return data
    log.warning("backup_ledger_unusable", backup=backup.id)
    return []


def finish_command(backup_id: str) -> str:
    return (f"`neonpro backup reapply {backup_id} --target URL` once the live database's "
            "erasure ledger (NEONPRO_DATABASE_URL) answers, or the same with "
            "--accept-erasure-risk to open it without (recorded in the audit trail)")


def restore_backup(container: Container, backup: Backup, target_url: str, *,
                   force: bool = False, jobs: int = 2, accept_erasure_risk: bool = False,
                   actor: Actor = SystemActors.BACKUP) -> RestoreReport:
    """Restore ``backup`` into ``target_url``: roles and grants, then the data, then the
    migrations, then every erasure recorded after the backup, then a health check.

    The erasures re-applied are proven complete only when the live database's erasure
    ledger was read (or the target itself was the live database, and its ledger was read
    before it was replaced): erasures decided after the newest backup are recorded nowhere
    else. Otherwise the restored database is left on hold, closed to the application role
    (:mod:`neonpro.adapters.db.restore_hold`), ``held`` is set and ``finish`` names the
    command that finishes the job; ``accept_erasure_risk`` opens it anyway, recorded in
    the audit trail. The target is created, and a replaced one dropped, only once the
    backup's files are checked and decrypted, and it is on hold from its creation on."""
    roles = _roles(container)
    target = Target.from_url(target_url)
    timings = Timings()
    check_files(backup)
    exists = _database_exists(target)
    own = exists and not _is_empty(target)
    if own and not force:
        raise RestoreRefused(f"database {target.describe()} is not empty: refusing to overwrite "
                             "it without --force")
    ledger, proven, warnings = _erasures_to_keep(container, backup, target, own=own)
    reason = f"backup {backup.id} is being restored"
    with _plain_files(backup, _key(container)) as files:
        with timings.step("roles"):
            _ensure_roles(target, roles)
        with timings.step("pg_restore"):
            _create_database(target, replace=exists)
            _hold(target, roles, reason)
            _restore_files(target, files, jobs, backup.manifest)
            _hold(target, roles, reason)  # the dump's grants gave the usage back
    with timings.step("compare"):
        problems = compare(backup, target, roles)
    with timings.step("migrate"):
        migrate.upgrade(target.url(), roles, audit_key=container.keyring.active_audit_key)
    restored = Container(container.settings, database_url=target.url(),
                         keyring=container.keyring)
    finish = None
    try:
        with timings.step("reapply_erasures"):
            reapplied = reapply_ledger(restored, ledger, actor)
        if proven or accept_erasure_risk:
            _lift(target, roles)
            if not proven:
                record_accepted_risk(restored, backup.id, warnings, actor)
        else:
            finish = finish_command(backup.id)
            _hold(target, roles, f"restore of backup {backup.id} could not prove that every "
                                 f"erasure was re-applied: run {finish}")
            problems.append("erasures decided after the newest backup could not be proven "
                            "re-applied: the database is closed to the application role")
        with timings.step("health"):
            health = check_health(restored.database)
        ok = not problems and bool(health["ok"])
        record_event(restored, AuditAction.RESTORE, backup.id, {
            "reapplied_erasures": reapplied, "ok": ok, "erasures_proven": proven,
            "held": finish is not None, "snapshot_at": backup.manifest["snapshot_at"]},
            ok=ok, actor=actor)
    finally:
        restored.close()
    with suppress(Exception):
        record_event(container, AuditAction.RESTORE, backup.id, {
            "target": target.describe(), "ok": ok}, ok=ok, actor=actor)
    return RestoreReport(backup.id, target.describe(), ok, timings.steps, problems,
                         reapplied, health, warnings, proven, finish is not None, finish)


def _erasures_to_keep(container: Container, backup: Backup, target: Target, *,
                      own: bool) -> tuple[list[dict[str, Any]], bool, list[str]]:
    """The erasures a restore must re-apply: the target's own ledger (read before it is
    replaced: if that fails, stop here), the live database's, and those of every later
    backup; whether they are proven complete; and why not."""
    roles = _roles(container)
    ledger = (_ledger_from(target, roles) or []) if own else []
    warnings: list[str] = []
    source = _source(container)
    proven = own and source == target
    if source != target:
        live = _ledger_from(source, roles, warnings)
        proven = live is not None
        ledger += live or []
    elif not own:
        warnings.append(f"the live database {target.describe()} is gone or empty: erasures "
                        "decided after the newest backup are recorded nowhere")
    return ledger + later_ledgers(backup), proven, warnings


def _hold(target: Target, roles: Roles, reason: str) -> None:
    with snap.connect(target) as conn:
        restore_hold.hold(conn, roles, reason)


def _lift(target: Target, roles: Roles) -> None:
    with snap.connect(target) as conn:
        restore_hold.lift(conn, roles)


def hold_live(container: Container, reason: str) -> None:
    """Close ``container``'s database to the application role (a point-in-time restore
    whose erasures are not proven re-applied yet)."""
    _hold(_source(container), _roles(container), reason)


def lift_live(container: Container) -> None:
    _lift(_source(container), _roles(container))


def record_accepted_risk(restored: Container, backup_id: str, why: list[str],
                         actor: Actor) -> None:
    """Opening a restore whose erasures were not proven re-applied is a decision someone
    answers for: a critical event in the restored database's audit trail."""
    uow = restored.service_uow(actor)
    with uow:
        uow.audit.record(AuditAction.RESTORE, AuditResource.BACKUP, backup_id,
                         risk=RiskLevel.CRITICAL,
                         details={"erasures_proven": False, "accepted_risk": True,
                                  "why": [w[:300] for w in why]})
        uow.commit()
    restored.seal_audit(actor)


@dataclass
class FinishReport:
    backup_id: str
    target: str
    reapplied_erasures: int
    erasures_proven: bool
    health: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"backup": self.backup_id, "target": self.target,
                "reapplied_erasures": self.reapplied_erasures,
                "erasures_proven": self.erasures_proven, "health_ok": self.health.get("ok")}


def finish_restore(container: Container, backup: Backup, target_url: str, *,
                   accept_erasure_risk: bool = False,
                   actor: Actor = SystemActors.BACKUP) -> FinishReport:
    """Finish a restore left on hold: read the live database's erasure ledger (it must
    answer now, unless ``accept_erasure_risk``), re-apply every erasure it and the later
    backups know, and open the database to the application role again."""
    roles = _roles(container)
    target = Target.from_url(target_url)
    source = _source(container)
    warnings: list[str] = []
    if source == target:
        live = None
        warnings.append(f"{target.describe()} is the live database itself: erasures decided "
                        "after the newest backup are recorded nowhere else")
    else:
        live = _ledger_from(source, roles, warnings if accept_erasure_risk else None)
    proven = live is not None
    if not proven and not accept_erasure_risk:
        raise BackupError(warnings[0] + "; the database stays closed: run this again once "
                          "it answers, or add --accept-erasure-risk")
    entries = (live or []) + later_ledgers(backup)
    restored = Container(container.settings, database_url=target.url(),
                         keyring=container.keyring)
    try:
        reapplied = reapply_ledger(restored, entries, actor)
        _lift(target, roles)
        if not proven:
            record_accepted_risk(restored, backup.id, warnings, actor)
        health = check_health(restored.database)
        record_event(restored, AuditAction.RESTORE, backup.id, {
            "phase": "finish", "reapplied_erasures": reapplied, "erasures_proven": proven},
            actor=actor)
    finally:
        restored.close()
    return FinishReport(backup.id, target.describe(), reapplied, proven, health)


def known_erasures(container: Container, warnings: list[str]) -> list[dict[str, Any]]:
    """Every erasure known outside a database about to be rolled back: its own live ledger
    (a warning if unreachable) and the ledgers of every logical backup."""
    entries = _ledger_from(_source(container), _roles(container), warnings) or []
    for backup in catalog(container.settings.backup_dir):
        entries += _backup_ledger(backup)
    return entries


def reapply_ledger(container: Container, entries: list[dict[str, Any]],
                   actor: Actor = SystemActors.BACKUP) -> int:
    """Append the ledger entries ``container``'s database lacks, then erase again every
    patient the ledger names whose row came back unerased. Returns how many."""
    with snap.connect(_source(container)) as conn:
        snap.insert_ledger(conn, _roles(container), _unique(entries))
        conn.commit()
    return reapply_erasures(container, actor)


def _unique(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for e in entries:
        seen.setdefault(e["id"], e)
    return sorted(seen.values(), key=lambda e: e["decided_at"])


# ---------------------------------------------------------------------------- prune


@dataclass(frozen=True)
class PrunePlan:
    keep: list[Backup]
    delete: list[Backup]
    reasons: dict[str, list[str]]


def plan_prune(backups: list[Backup], daily: int, weekly: int, monthly: int) -> PrunePlan:
    """Grandfather-father-son: the newest backup of each of the last ``daily`` days,
    ``weekly`` ISO weeks and ``monthly`` months; always the newest verified backup (so
    the only verified one is never deleted) and the newest one."""
    newest_first = sorted(backups, key=lambda b: b.finished_at, reverse=True)
    reasons: dict[str, list[str]] = {}

    def keep_buckets(label: str, count: int, bucket: Callable[[datetime], object]) -> None:
        seen: list[object] = []
        for b in newest_first:
            key = bucket(b.finished_at)
            if key in seen:
                continue
            if len(seen) == count:
                break
            seen.append(key)
            reasons.setdefault(b.id, []).append(label)

    keep_buckets("daily", daily, lambda t: t.date())
    keep_buckets("weekly", weekly, lambda t: t.isocalendar()[:2])
    keep_buckets("monthly", monthly, lambda t: (t.year, t.month))
    if newest_first:
        reasons.setdefault(newest_first[0].id, []).append("newest")
    verified = [b for b in newest_first if b.verified]
    if verified:
        reasons.setdefault(verified[0].id, []).append("newest verified")
    keep = [b for b in newest_first if b.id in reasons]
    delete = [b for b in newest_first if b.id not in reasons]
    return PrunePlan(keep, delete, reasons)


def prune(container: Container, *, directory: Path | None = None, dry_run: bool = False,
          actor: Actor = SystemActors.BACKUP) -> PrunePlan:
    settings = container.settings
    directory = directory or settings.backup_dir
    plan = plan_prune(catalog(directory), settings.backup_keep_daily,
                      settings.backup_keep_weekly, settings.backup_keep_monthly)
    if not dry_run:
        for b in plan.delete:
            shutil.rmtree(b.path)
        stale = _now() - timedelta(hours=6)
        for partial in directory.glob("*.partial") if directory.is_dir() else []:
            if datetime.fromtimestamp(partial.stat().st_mtime, UTC) < stale:
                shutil.rmtree(partial, ignore_errors=True)
        if plan.delete:
            record_event(container, AuditAction.DELETE, "prune", {
                "phase": "prune", "deleted": [b.id for b in plan.delete]}, actor=actor)
    return plan


# ---------------------------------------------------------------------------- drill


@dataclass
class DrillReport:
    backup_id: str
    ok: bool
    rto_seconds: float
    rpo_seconds: float | None
    rpo_basis: str
    steps: dict[str, float]
    problems: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {"backup": self.backup_id, "ok": self.ok, "rto_seconds": self.rto_seconds,
                "rpo_seconds": self.rpo_seconds, "rpo_basis": self.rpo_basis,
                "steps": self.steps, "problems": self.problems}


RTO_TARGET_S = 15 * 60
RPO_TARGET_S = 5 * 60


def drill(container: Container, *, directory: Path | None = None, jobs: int = 2,
          wal_wait_s: float = 420.0, actor: Actor = SystemActors.BACKUP) -> DrillReport:
    """Backup, restore into a scratch database, verify it, and measure RTO and RPO.

    RTO: from the start of the restore to a healthy, migrated database. RPO: with WAL
    archiving on, the seconds from a committed write to its WAL segment being archived
    (what a crash just before the archive would lose); without it, the data written since
    the last logical backup is at risk, so the RPO is the backup interval (not measured).
    """
    steps: dict[str, float] = {}
    start = time.perf_counter()
    backup = create_backup(container, directory=directory, actor=actor)
    steps["backup"] = round(time.perf_counter() - start, 3)
    scratch = _scratch(container, "drill")
    problems: list[str] = []
    try:
        t0 = time.perf_counter()
        report = restore_backup(container, backup, scratch.url(), jobs=jobs, actor=actor)
        rto = round(time.perf_counter() - t0, 3)
        steps.update({f"restore.{k}": v for k, v in report.seconds.items()})
        problems += report.problems
        if not report.health.get("ok"):
            problems.append("restored database is not healthy")
        t1 = time.perf_counter()
        events, chain_problems = _verify_audit(container, scratch)
        steps["audit_verify"] = round(time.perf_counter() - t1, 3)
        problems += chain_problems
        log.info("drill_audit_verified", events=events)
    finally:
        with suppress(psycopg.Error):
            drop_database(scratch)
    # the drill restored and checked this backup as verify does: record it as verified
    _write_json(backup.path / VERIFIED, VerifyReport(
        backup.id, not problems, list(problems), steps).as_dict() | {"by": "drill"})
    rpo, basis = measure_wal_rpo(_source(container), wait_s=wal_wait_s)
    if rto > RTO_TARGET_S:
        problems.append(f"RTO {rto:.0f} s is over the {RTO_TARGET_S} s target")
    if rpo is not None and rpo > RPO_TARGET_S:
        problems.append(f"RPO {rpo:.0f} s is over the {RPO_TARGET_S} s target")
    return DrillReport(backup.id, not problems, rto, rpo, basis, steps, problems)


def measure_wal_rpo(target: Target, *, wait_s: float) -> tuple[float | None, str]:
    """Commit a WAL record, then wait for the archiver to ship its segment."""
    with snap.connect(target) as conn:
        conn.autocommit = True
        row = conn.execute("SELECT current_setting('archive_mode'), "
                           "current_setting('archive_command')").fetchone()
        if row is None or row[0] == "off" or not row[1] or row[1] == "(disabled)":
            return None, "no WAL archiving: logical backups alone lose what was written since"
        # a committed transaction that writes WAL, without touching any neonpro table
        lsn_row = conn.execute("SELECT pg_walfile_name(pg_current_wal_insert_lsn()), "
                               "txid_current()").fetchone()
        assert lsn_row is not None  # noqa: S101
        segment = str(lsn_row[0])
        written = time.monotonic()
        while time.monotonic() - written < wait_s:
            done = conn.execute("SELECT last_archived_wal FROM pg_stat_archiver").fetchone()
            if done and done[0] and str(done[0])[:24] >= segment:
                return round(time.monotonic() - written, 3), "WAL archiving (measured)"
            time.sleep(0.5)
    return wait_s, f"WAL segment not archived within {wait_s:.0f} s"
