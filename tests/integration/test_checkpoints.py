"""Checkpoints that bind, taken without anyone thinking of it, written where the database
cannot reach: a directory, an HTTP endpoint, syslog, and the system chain itself."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from neonpro.adapters.checkpoints import checkpoint_lines
from neonpro.adapters.db import migrate
from neonpro.adapters.db.audit import read_checkpoints, verify_chains
from neonpro.adapters.db.security import Roles
from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.domain.schemas.patient import PatientCreate
from neonpro.services import clinics, patients
from tests.conftest import make_keyring, make_settings
from tests.sessions import service_session
from tests.tamper import as_owner

ME = Actor(uuid.UUID("00000000-0000-0000-0000-00000000c4e1"), "admin")


class _Sink(BaseHTTPRequestHandler):
    received: list[dict[str, Any]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_sink() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    handler = type("Sink", (_Sink,), {"received": []})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/checkpoints", handler.received
    finally:
        server.shutdown()


@pytest.fixture
def syslog_sink() -> Iterator[tuple[str, list[str]]]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    lines: list[str] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                lines.append(sock.recv(65536).decode())
            except TimeoutError:
                continue

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}", lines
    finally:
        stop.set()
        thread.join()
        sock.close()


@pytest.fixture
def box(fresh_database_url: str, roles: Roles, tmp_path: Path,
        http_sink: tuple[str, list[dict[str, Any]]],
        syslog_sink: tuple[str, list[str]]) -> Iterator[Container]:
    migrate.upgrade(fresh_database_url, roles)
    settings = make_settings(fresh_database_url, audit_checkpoint_dir=tmp_path / "cps",
                             audit_checkpoint_interval_s=5, audit_checkpoint_url=http_sink[0],
                             audit_checkpoint_syslog=syslog_sink[0])
    container = Container(settings, database_url=fresh_database_url, keyring=make_keyring())
    try:
        yield container
    finally:
        container.close(seal=False)


def _clinic(box: Container) -> uuid.UUID:
    clinic = clinics.create_clinic(box.service_uow(ME), ClinicCreate(name="CP")).id
    patients.register_patient(box.uow(clinic, ME), PatientCreate(full_name="Ponto"))
    return clinic


def test_a_checkpoint_goes_to_every_sink(box: Container, tmp_path: Path,
                                         http_sink: tuple[str, list[dict[str, Any]]],
                                         syslog_sink: tuple[str, list[str]]) -> None:
    clinic = _clinic(box)
    result = box.checkpoints.take()
    assert result.path is not None
    assert result.path.parent == tmp_path / "cps"
    on_file = read_checkpoints(result.path)
    assert {(c.chain, c.clinic_id) for c in on_file} >= {("audit_events", clinic)}
    assert http_sink[1] == [json.loads(result.path.read_text())]
    deadline = time.monotonic() + 5
    while len(syslog_sink[1]) < len(on_file) and time.monotonic() < deadline:
        time.sleep(0.05)
    syslog = tmp_path / "syslog.txt"
    syslog.write_text("\n".join(syslog_sink[1]))
    assert sorted(read_checkpoints(syslog), key=str) == sorted(on_file, key=str)
    # the heads are in the system chain too
    with service_session(box.database, ME.id) as s:
        recorded = s.execute(text(
            "SELECT details FROM audit_events WHERE action = 'VERIFY' AND resource_type = "
            "'audit_checkpoint'")).scalars().all()
    assert str(clinic) in json.dumps(recorded)
    # a second checkpoint with nothing new writes nothing
    assert box.checkpoints.take().path is None


def test_the_running_service_takes_checkpoints_by_itself(box: Container,
                                                         tmp_path: Path) -> None:
    clinic = _clinic(box)
    box.start_sealer(interval=0.1)
    box.start_checkpointer()  # every 5 s (the fixture's setting)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not list((tmp_path / "cps").glob("*.json")):
        time.sleep(0.2)
    files = read_checkpoints(tmp_path / "cps")
    assert any(c.clinic_id == clinic for c in files)
    # the window the setting states: a change made now is signed within one interval
    patients.register_patient(box.uow(clinic, ME), PatientCreate(full_name="Outra"))
    first = max(c.seq for c in files if c.clinic_id == clinic)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and max(
            c.seq for c in read_checkpoints(tmp_path / "cps") if c.clinic_id == clinic) == first:
        time.sleep(0.2)
    assert max(c.seq for c in read_checkpoints(tmp_path / "cps") if c.clinic_id == clinic) > first
    box.stop_sealer()


def test_a_shorter_chain_than_a_checkpoint_is_named(box: Container, tmp_path: Path) -> None:
    clinic = _clinic(box)
    box.checkpoints.take()
    files = read_checkpoints(tmp_path / "cps")
    signed = max(c.seq for c in files if c.clinic_id == clinic)
    as_owner(box, f"DELETE FROM audit_events WHERE clinic_id = '{clinic}' AND seq >= {signed}",
             "DELETE FROM audit_events WHERE action = 'VERIFY'")
    [report] = [r for r in verify_chains(box.database, ME, box.keyring, clinic, files)
                if r.clinic_id == clinic and r.chain == "audit_events"]
    assert report.checkpoint == "truncated"
    assert f"covers seq {signed}" in (report.reason or "")


def test_syslog_lines_carry_one_head_each() -> None:
    document = {"key_id": "a1", "checkpoints": [
        {"chain": "audit_events", "clinic_id": str(uuid.uuid4()), "seq": 3, "hash": "ab" * 32,
         "signature": "cd" * 32}]}
    [line] = checkpoint_lines(document)
    assert line.startswith("neonpro-checkpoint {")
    assert json.loads(line.split(" ", 1)[1])["key_id"] == "a1"
