"""Upgrading a database whose chains were sealed before audit keys (revision 0008).

Those events keep their plain SHA-256 hashes: rewriting them would invalidate every
checkpoint file taken before. Revision 0011 verifies each such chain and signs its head
into ``audit_chain_anchors`` with the audit key; ``verify`` then accepts unkeyed events up
to the anchor only. Adversary: the owner, turning keyed events back into unkeyed ones, or
deleting the anchor, or editing the old prefix.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from neonpro.adapters.db import migrate
from neonpro.adapters.db.audit import ChainReport, seal_pending, verify_chains
from neonpro.adapters.db.security import Roles
from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor
from tests.conftest import make_keyring, make_settings
from tests.sessions import service_session
from tests.tamper import as_owner

SYSTEM = Actor(uuid.UUID("00000000-0000-0000-0000-00000000a111"), "system")
CLINIC = uuid.UUID("00000000-0000-0000-0000-0000000c1c00")


def _old_events(url: str, count: int) -> None:
    """Events written and sealed the way revision 0008 did (the SQL sealer, no key)."""
    engine = create_engine(url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL ROLE neonpro_service"))
        conn.execute(text("SELECT set_config('app.actor_id', :a, true)"), {"a": str(SYSTEM.id)})
        for n in range(count):
            conn.execute(text("INSERT INTO audit_events (clinic_id, actor_id, action, "
                              "resource_type, details) VALUES (:c, :a, 'VIEW', 'patient', "
                              "CAST(:d AS jsonb))"),
                         {"c": CLINIC, "a": SYSTEM.id, "d": f'{{"n": {n}}}'})
        conn.execute(text("SELECT neonpro_audit_seal(:c, 1000)"), {"c": CLINIC})
    engine.dispose()


@pytest.fixture
def upgraded(fresh_database_url: str, roles: Roles) -> Iterator[Container]:
    migrate.upgrade(fresh_database_url, roles, "0008")
    _old_events(fresh_database_url, 5)
    box = Container(make_settings(fresh_database_url), database_url=fresh_database_url,
                    keyring=make_keyring())
    migrate.upgrade(fresh_database_url, roles, audit_key=box.keyring.active_audit_key)
    try:
        yield box
    finally:
        box.close(seal=False)


def _report(box: Container) -> ChainReport:
    return next(r for r in verify_chains(box.database, SYSTEM, box.keyring, CLINIC)
                if r.clinic_id == CLINIC and r.chain == "audit_events")


def test_the_upgrade_needs_the_key_when_chains_were_sealed(fresh_database_url: str,
                                                          roles: Roles) -> None:
    migrate.upgrade(fresh_database_url, roles, "0008")
    _old_events(fresh_database_url, 2)
    with pytest.raises(RuntimeError, match="with the audit key"):
        migrate.upgrade(fresh_database_url, roles)
    assert migrate.current_revisions(fresh_database_url) == ("0008",)


def test_a_chain_broken_before_the_upgrade_is_not_signed(fresh_database_url: str,
                                                          roles: Roles) -> None:
    migrate.upgrade(fresh_database_url, roles, "0008")
    _old_events(fresh_database_url, 3)
    engine = create_engine(fresh_database_url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        conn.execute(text("SET LOCAL ROLE neonpro_owner"))
        conn.execute(text("UPDATE audit_events SET details = '{}' WHERE seq = 2"))
        conn.execute(text("RESET ROLE"))
        conn.execute(text("ALTER TABLE audit_events ENABLE TRIGGER USER"))
    engine.dispose()
    with pytest.raises(RuntimeError, match="broken at seq 2"):
        migrate.upgrade(fresh_database_url, roles, audit_key=make_keyring().active_audit_key)


def test_old_events_verify_under_their_anchor_and_new_ones_are_keyed(
        upgraded: Container) -> None:
    box = upgraded
    with service_session(box.database, SYSTEM.id, clinic_id=CLINIC) as s:
        s.execute(text("INSERT INTO audit_events (action) VALUES ('VIEW')"))
    seal_pending(box.database, box.keyring, SYSTEM)
    report = _report(box)
    assert report.ok, report
    assert report.sealed == 6
    with service_session(box.database, SYSTEM.id) as s:
        keys = s.execute(text("SELECT seq, key_id FROM audit_events WHERE clinic_id = :c "
                              "ORDER BY seq"), {"c": CLINIC}).all()
    assert [k for _, k in keys] == [None] * 5 + ["a1"]


@pytest.mark.parametrize(("tamper", "reason"), [
    # the old prefix edited and re-hashed the old way up to its end: the anchor says no
    ("UPDATE audit_events SET details = '{{}}' WHERE clinic_id = '{c}' AND seq = 5",
     "edited"),
    ("DELETE FROM audit_chain_anchors", "not sealed with an audit key"),
    ("UPDATE audit_chain_anchors SET seq = 6", "anchor signature invalid"),
    ("UPDATE audit_events SET key_id = NULL WHERE clinic_id = '{c}' AND seq = 6",
     "not sealed with an audit key"),
    ("DELETE FROM audit_events WHERE clinic_id = '{c}' AND seq >= 4",
     "before its signed anchor"),
])
def test_the_owner_cannot_pass_keyed_events_off_as_old_ones(
        upgraded: Container, tamper: str, reason: str) -> None:
    box = upgraded
    with service_session(box.database, SYSTEM.id, clinic_id=CLINIC) as s:
        s.execute(text("INSERT INTO audit_events (action) VALUES ('VIEW')"))
    seal_pending(box.database, box.keyring, SYSTEM)
    assert _report(box).ok
    as_owner(box, tamper.format(c=CLINIC))
    report = _report(box)
    assert not report.ok
    assert reason in (report.reason or ""), report


def test_a_downgrade_leaves_a_chain_the_old_code_verifies(upgraded: Container,
                                                          roles: Roles) -> None:
    """Below 0011 there is no key: keyed events are hashed again the unkeyed way."""
    box = upgraded
    with service_session(box.database, SYSTEM.id, clinic_id=CLINIC) as s:
        s.execute(text("INSERT INTO audit_events (action) VALUES ('VIEW')"))
    seal_pending(box.database, box.keyring, SYSTEM)
    url = box.database.owner_url
    box.close(seal=False)
    migrate.downgrade(url, roles, "0008")
    engine = create_engine(url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL ROLE neonpro_owner"))
        wrong = conn.execute(text(
            "SELECT count(*) FROM (SELECT e.hash, e.prev_hash, lag(e.hash) OVER w AS before, "
            "sha256(neonpro_audit_canonical(e, e.seq, e.prev_hash)) AS computed "
            "FROM audit_events e WHERE e.clinic_id = :c WINDOW w AS (ORDER BY e.seq)) x "
            "WHERE x.hash <> x.computed OR x.prev_hash IS DISTINCT FROM x.before"),
            {"c": CLINIC}).scalar_one()
        total = conn.execute(text("SELECT count(*) FROM audit_events WHERE clinic_id = :c"),
                             {"c": CLINIC}).scalar_one()
    engine.dispose()
    assert (total, wrong) == (6, 0)
