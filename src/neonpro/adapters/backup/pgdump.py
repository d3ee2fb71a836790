"""pg_dump and pg_restore as subprocesses: run one, stream a dump to disk, restore a backup.

Every child gets its connection through libpq's environment (:meth:`Target.env`), reads
nothing on stdin, and has its stderr drained on a thread, so a chatty tool never blocks; a
failure raises :class:`BackupError` with the tool's first error line, redacted.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from neonpro.adapters.backup.pgtools import BackupError, Target, last_line, tool
from neonpro.adapters.backup.stream import HashingWriter, sha256_file
from neonpro.adapters.db.security import Roles

SCHEMA, DATA, OWNER_DATA = "schema.dump", "data.dump", "owner-data.dump"
DUMPS: Final = (SCHEMA, DATA, OWNER_DATA)
COMPRESSION: Final = "1"  # gzip level 1 (every pg_dump since 15 has gzip; level 1 is ~4x level 6)


def run(args: list[str], target: Target, what: str, *,
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
