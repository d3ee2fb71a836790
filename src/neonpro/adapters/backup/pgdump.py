"""pg_dump and pg_restore as subprocesses: run one, stream a dump to disk, restore a backup.

Every child gets its connection through libpq's environment (:func:`.pgtools.libpq_env`),
reads nothing on stdin, and has its stderr drained on a thread, so a chatty tool never blocks; a
failure raises :class:`BackupError` with the tool's first error line, redacted.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from neonpro.adapters.backup import server
from neonpro.adapters.backup.pgtools import _major, last_line, libpq_env, tool, version
from neonpro.adapters.backup.stream import HashingWriter, parse_key, sha256_file
from neonpro.adapters.db.security import Roles
from neonpro.domain.backup import (
    COMPRESSION,
    DATA,
    DUMPS,
    OWNER_DATA,
    SCHEMA,
    BackupError,
    Dumped,
    Target,
    Timings,
)

__all__ = ["COMPRESSION", "DATA", "DUMPS", "OWNER_DATA", "SCHEMA", "PgDumpTool", "dump",
           "dump_commands", "restore", "run"]


def run(args: list[str], target: Target, what: str, *,
        stdout: Callable[[bytes], None] | None = None) -> None:
    """Run a PostgreSQL tool; stream its stdout to ``stdout`` if given."""
    proc = subprocess.Popen(  # noqa: S603  (fixed binaries, no shell)
        args, env=libpq_env(target), stdin=subprocess.DEVNULL,
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


def dump(args: list[str], target: Target, path: Path, key: bytes | None,
         what: str) -> dict[str, Any]:
    """Run ``pg_dump`` into ``path`` (encrypted as it streams when ``key`` is given);
    returns the manifest entry of the file (name, SHA-256, size)."""
    if key is None:
        run([*args, f"--file={path}"], target, what)
        path.chmod(0o600)
        return {"name": path.name, "sha256": sha256_file(path), "bytes": path.stat().st_size}
    writer = HashingWriter(path, key)
    try:
        run(args, target, what, stdout=writer.write)
    except BaseException:
        writer.abort()
        raise
    digest = writer.close()
    return {"name": path.name, "sha256": digest, "bytes": writer.size}


def restore(target: Target, files: dict[str, Path], jobs: int, manifest: dict[str, Any],
            server_major: int) -> None:
    """Structure, then rows (service's and owner's), then indexes, constraints, triggers
    and policies: triggers do not fire on restored rows, indexes are built once."""
    if server_major < manifest["server_major"]:
        raise BackupError(f"backup {manifest['id']} comes from PostgreSQL "
                          f"{manifest['server_major']}: it cannot go into PostgreSQL "
                          f"{server_major}")
    pg_restore = tool("pg_restore", server_major, at_least=manifest["tools"]["pg_dump_major"])
    base = [str(pg_restore), "--exit-on-error", "--no-password",
            f"--dbname={target.database}"]
    run([*base, "--section=pre-data", str(files[SCHEMA])], target, "pg_restore (schema)")
    run([*base, f"--jobs={jobs}", str(files[DATA])], target, "pg_restore (data)")
    run([*base, str(files[OWNER_DATA])], target, "pg_restore (owner data)")
    run([*base, f"--jobs={jobs}", "--section=post-data", str(files[SCHEMA])], target,
        "pg_restore (indexes, constraints)")


def dump_commands(pg_dump: Path, snapshot_id: str, roles: Roles,
                  owner_only: list[str]) -> list[tuple[str, list[str]]]:
    """The three pg_dump command lines of a backup, all in the exported snapshot: the
    structure as the owner, the rows as the service role (row-level security is forced),
    the owner-only tables as the owner."""
    common = [str(pg_dump), "--format=custom", f"--compress={COMPRESSION}",
              f"--snapshot={snapshot_id}", "--no-password"]
    return [
        (SCHEMA, [*common, f"--role={roles.owner}", "--schema-only"]),
        (DATA, [*common, f"--role={roles.service}", "--data-only",
                *(f"--exclude-table=public.{t}" for t in owner_only)]),
        (OWNER_DATA, [*common, f"--role={roles.owner}", "--data-only",
                      "--enable-row-security",
                      *(f"--table=public.{t}" for t in owner_only)]),
    ]


class PgDumpTool:
    """The :class:`~neonpro.domain.ports_backup.DumpTool` of the live database ``source``:
    dumps as its owner and service roles, encrypted with ``secret`` (the backup key, base64)
    when one is set."""

    def __init__(self, source: Target, roles: Roles, secret: str | None) -> None:
        self._source = source
        self._roles = roles
        self._secret = secret

    def _key(self) -> bytes | None:
        return None if self._secret is None else parse_key(self._secret)

    @property
    def encrypted(self) -> bool:
        return self._key() is not None

    def dump(self, work: Path, timings: Timings) -> Dumped:
        """The three dumps side by side, while the snapshot's transaction reads the manifest."""
        key, source = self._key(), self._source
        with server.exported_snapshot(source, self._roles) as snapshot:
            pg_dump = tool("pg_dump", snapshot.facts.major)
            dumps = dump_commands(pg_dump, snapshot.id, self._roles,
                                  snapshot.owner_only_tables())
            with ThreadPoolExecutor(max_workers=len(dumps)) as pool:
                futures = {name.removesuffix(".dump"): pool.submit(
                    _timed_dump, timings, args, source, work / name, key)
                    for name, args in dumps}
                with timings.step("manifest_stats"):
                    reads = snapshot.manifest_reads()
                files: dict[str, Any] = {k: f.result() for k, f in futures.items()}
        tools = {"pg_dump": version(pg_dump), "pg_dump_major": _major(pg_dump)}
        return Dumped(reads, snapshot.facts, tools, files)

    def restore(self, target: Target, files: dict[str, Path], jobs: int,
                manifest: dict[str, Any]) -> None:
        restore(target, files, jobs, manifest, server.server_major(target))


def _timed_dump(timings: Timings, args: list[str], source: Target, path: Path,
                key: bytes | None) -> dict[str, Any]:
    with timings.step(f"pg_dump {path.name}"):
        return dump(args, source, path, key, f"pg_dump ({path.name})")
