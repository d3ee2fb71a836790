"""One consent rule everywhere (issue 13, defect 2): per patient and purpose, the latest
decision (a grant or a revocation, in ledger order) wins. The gate, the patient's summary,
the LGPD confirmation, the JSON and FHIR exports and the compliance check must agree."""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor
from neonpro.domain.errors import Conflict, ConsentRequired
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.domain.schemas.consent import ConsentCreate
from neonpro.domain.schemas.patient import PatientCreate
from neonpro.domain.vocabulary import CollectionMethod, ConsentPurpose
from neonpro.queries.export import ExportFormat
from neonpro.services import clinics, consents, lgpd_requests, patients
from tests.sessions import tenant_session

ME = Actor(uuid.UUID("00000000-0000-0000-0000-0000000000d3"), "admin")
TERMS = hashlib.sha256(b"termos de consentimento").hexdigest()
M, R = ConsentPurpose.MARKETING, ConsentPurpose.RESEARCH


@dataclass
class World:
    box: Container
    clinic: uuid.UUID
    patient: uuid.UUID

    def uow(self):  # type: ignore[no-untyped-def]
        return self.box.uow(self.clinic, ME)

    def grant(self, purpose: ConsentPurpose, version: str, **kw: object) -> uuid.UUID:
        return consents.grant_consent(self.uow(), ConsentCreate(
            patient_id=self.patient, purpose=purpose, terms_version=version, terms_hash=TERMS,
            collection_method=CollectionMethod.DIGITAL_SIGNATURE,
            **kw)).id  # type: ignore[arg-type]

    def revoke(self, consent_id: uuid.UUID) -> uuid.UUID:
        return consents.revoke_consent(self.uow(), consent_id).id

    # ----------------------------------------------------------------- every reader
    def gate(self, purpose: ConsentPurpose) -> bool:
        try:
            with self.uow() as tx:
                consents.require_consent(tx, self.patient, purpose)
        except ConsentRequired:
            return False
        return True

    def summary(self) -> tuple[str, str | None]:
        with self.uow() as tx:
            p = tx.patients.get(self.patient)
        return p.data_consent_status, p.data_consent_version

    def states(self) -> dict[str, str]:
        return {s.purpose: s.state.value
                for s in consents.consent_states(self.uow(), self.patient)}

    def confirmation(self) -> tuple[set[str], list[tuple[str, str]]]:
        """Purposes in force on the ledger, and (purpose, how it ended) of the others."""
        answer = lgpd_requests.confirm_processing(self.uow(), self.patient)
        in_force = {b.purpose for b in answer.legal_bases if b.source == "consent_ledger"}
        return in_force, sorted((w.purpose, w.status) for w in answer.withdrawn)

    def json_export(self) -> dict[str, object]:
        doc = json.loads(lgpd_requests.export_patient(self.uow(), self.patient).content)
        return {"summary": (doc["patient"]["data_consent_status"],
                            doc["patient"]["data_consent_version"]),
                "state": {s["purpose"]: s["state"] for s in doc.get("consent_state", [])}}

    def fhir_active(self) -> dict[str, list[str]]:
        """Purpose -> terms versions of the Consent resources the bundle calls active."""
        bundle = json.loads(lgpd_requests.export_patient(
            self.uow(), self.patient, ExportFormat.FHIR).content)
        active: dict[str, list[str]] = {}
        for entry in bundle["entry"]:
            r = entry["resource"]
            if r["resourceType"] != "Consent" or r["status"] != "active":
                continue
            purpose = r["provision"]["purpose"][0]["code"]
            version = next(e["valueString"] for e in r["extension"]
                           if e["url"].endswith("terms-version"))
            active.setdefault(purpose, []).append(version)
        return active

    def compliance(self) -> dict[str, set[uuid.UUID]]:
        """Purpose -> the consent ids the compliance check treats as current."""
        out: dict[str, set[uuid.UUID]] = {}
        for f in consents.check_compliance(self.uow()):
            if f.patient_id == self.patient:
                out.setdefault(f.purpose, set()).add(f.consent_id)
        return out

    def agree(self, expected: dict[ConsentPurpose, tuple[str, str, uuid.UUID] | None]) -> None:
        """Every reader agrees with the reference: purpose -> (state, version, grant id)
        when given, (state, '', id) otherwise, None when nothing was decided."""
        given = {p: v for p, v in expected.items() if v is not None and v[0] == "given"}
        for purpose in expected:
            assert self.gate(purpose) is (purpose in given), purpose
        states = self.states()
        assert states == {p.value: v[0] for p, v in expected.items() if v is not None}
        if given:
            latest = max(given.values(), key=lambda v: self._entry(v[2]))
            summary: tuple[str, str | None] = ("given", latest[1])
        elif any(v is not None and v[0] == "expired" for v in expected.values()):
            summary = ("expired", None)
        elif any(v is not None for v in expected.values()):
            summary = ("withdrawn", None)
        else:
            summary = ("pending", None)
        assert self.summary() == summary
        in_force, withdrawn = self.confirmation()
        assert in_force == {p.value for p in given}
        assert withdrawn == sorted(
            (p.value, {"withdrawn": "revoked", "expired": "expired"}[v[0]])
            for p, v in expected.items() if v is not None and p not in given)
        exported = self.json_export()
        assert exported == {"summary": summary, "state": states}
        assert self.fhir_active() == {p.value: [v[1]] for p, v in given.items()}
        current = self.compliance()  # no expiry set: each grant in force is "no_expiry"
        assert current == {p.value: {v[2]} for p, v in given.items()}

    def _entry(self, consent_id: uuid.UUID) -> int:
        with self.uow() as tx:
            return int(tx.connection.execute(text(
                "SELECT entry_no FROM consent_records WHERE id = :i"), {"i": consent_id}
            ).scalar_one())


@pytest.fixture
def w(container: Container) -> World:
    clinic = clinics.create_clinic(container.service_uow(ME),
                                   ClinicCreate(name="Consent state")).id
    patient = patients.register_patient(container.uow(clinic, ME),
                                        PatientCreate(full_name="Titular Do Estado")).id
    return World(container, clinic, patient)


def test_the_issue_scenario_grant_twice_revoke_the_newest(w: World) -> None:
    w.grant(M, "marketing-v1")
    newest = w.grant(M, "marketing-v2")
    w.revoke(newest)
    # each reader on its own, so a regression names every one that disagrees
    seen = {
        "gate": w.gate(M),
        "summary": w.summary(),  # was given|marketing-v1
        "confirmation": w.confirmation(),  # was in force and withdrawn at once
        "json": w.json_export(),
        "fhir active": w.fhir_active(),  # the older grant was active
        "compliance": w.compliance(),  # the older grant was current
    }
    assert seen == {
        "gate": False,
        "summary": ("withdrawn", None),
        "confirmation": (set(), [("marketing", "revoked")]),
        "json": {"summary": ("withdrawn", None), "state": {"marketing": "withdrawn"}},
        "fhir active": {},
        "compliance": {},
    }
    w.agree({M: ("withdrawn", "", newest)})


def test_revoking_the_older_grant_withdraws_the_purpose_too(w: World) -> None:
    older = w.grant(M, "marketing-v1")
    w.grant(M, "marketing-v2")
    w.revoke(older)  # a decision later than every grant: the purpose is withdrawn
    w.agree({M: ("withdrawn", "", older)})
    again = w.grant(M, "marketing-v3")  # only a grant after the revocation restores it
    w.agree({M: ("given", "marketing-v3", again)})


def test_grant_regrant_revoke_regrant_across_two_purposes(w: World) -> None:
    w.agree({M: None, R: None})
    m1 = w.grant(M, "m1")
    w.agree({M: ("given", "m1", m1), R: None})
    r1 = w.grant(R, "r1")
    w.agree({M: ("given", "m1", m1), R: ("given", "r1", r1)})
    m2 = w.grant(M, "m2")  # regrant: the newer terms are the ones in force
    w.agree({M: ("given", "m2", m2), R: ("given", "r1", r1)})
    w.revoke(m1)  # the older grant revoked: marketing withdrawn, research untouched
    w.agree({M: ("withdrawn", "", m1), R: ("given", "r1", r1)})
    m3 = w.grant(M, "m3")
    w.agree({M: ("given", "m3", m3), R: ("given", "r1", r1)})
    w.revoke(r1)
    w.agree({M: ("given", "m3", m3), R: ("withdrawn", "", r1)})
    w.revoke(m3)
    w.agree({M: ("withdrawn", "", m3), R: ("withdrawn", "", r1)})
    r2 = w.grant(R, "r2")
    w.agree({M: ("withdrawn", "", m3), R: ("given", "r2", r2)})
    m4 = w.grant(M, "m4")  # the summary's version: the latest grant in force
    w.agree({M: ("given", "m4", m4), R: ("given", "r2", r2)})
    with pytest.raises(Conflict):  # a grant is revoked once
        w.revoke(m3)


def test_one_transaction_is_ordered_by_the_ledger_not_the_clock(w: World) -> None:
    """Rows of one transaction share created_at (now()); entry_no orders them."""
    for _ in range(5):  # random ids would order a tie half the time either way
        with w.uow() as tx:
            grant = tx.consents.add(ConsentCreate(
                patient_id=w.patient, purpose=M, terms_version="same-tx", terms_hash=TERMS,
                collection_method=CollectionMethod.DIGITAL_SIGNATURE))
            revoked = tx.consents.revoke(grant.id)
            assert grant.created_at == revoked.created_at
            tx.commit()
        assert not w.gate(M)
        assert w.summary() == ("withdrawn", None)
        with w.uow() as tx:
            revoked_again = tx.consents.add(ConsentCreate(
                patient_id=w.patient, purpose=M, terms_version="same-tx-2", terms_hash=TERMS,
                collection_method=CollectionMethod.DIGITAL_SIGNATURE))
            tx.consents.revoke(revoked_again.id)
            regrant = tx.consents.add(ConsentCreate(
                patient_id=w.patient, purpose=M, terms_version="same-tx-3", terms_hash=TERMS,
                collection_method=CollectionMethod.DIGITAL_SIGNATURE))
            tx.commit()
        w.agree({M: ("given", "same-tx-3", regrant.id)})
        w.revoke(regrant.id)
    history = consents.consent_history(w.uow(), w.patient, M)
    assert [h.status for h in history[:2]] == ["granted", "revoked"]  # ledger order


def test_expiry_of_an_older_grant_changes_nothing_while_a_newer_one_is_in_force(
    w: World,
) -> None:
    soon = datetime.now(UTC) + timedelta(seconds=1)
    w.grant(R, "r-short", expires_at=soon)
    newer = w.grant(R, "r-open")
    later = soon + timedelta(days=1)
    assert consents.expire_consents(w.box.service_uow(ME), later) >= 1
    w.agree({R: ("given", "r-open", newer)})


def test_a_newer_grant_that_expires_is_not_replaced_by_the_older_one(w: World) -> None:
    w.grant(R, "r-open")
    short = w.grant(R, "r-short", expires_at=datetime.now(UTC) + timedelta(seconds=1))
    later = datetime.now(UTC) + timedelta(days=1)
    with w.uow() as tx:
        state = tx.consents.state(w.patient, R, at=later)
    assert state is not None
    assert (state.state, state.decision_id) == ("expired", short)
    findings = consents.check_compliance(w.uow(), now=later)
    assert [(f.kind, f.consent_id) for f in findings if f.patient_id == w.patient] == [
        ("expired_but_not_marked", short)]
    assert consents.expire_consents(w.box.service_uow(ME), later) >= 1
    w.agree({R: ("expired", "", short)})


def test_the_ledger_order_is_the_databases_and_cannot_be_rewritten(w: World) -> None:
    first = w.grant(M, "m1")
    with tenant_session(w.box.database, w.clinic, ME.id, "admin") as s:
        # an insert naming a huge entry_no would win over every later decision: ignored
        s.execute(text(
            "INSERT INTO consent_records (clinic_id, patient_id, purpose, legal_basis, status, "
            "given_at, terms_version, terms_hash, entry_no) VALUES (:c, :p, 'marketing', "
            "'consent', 'granted', now(), 'forged', :h, 9000000000000000000)"),
            {"c": w.clinic, "p": w.patient, "h": TERMS})
    with w.uow() as tx:
        top = tx.connection.execute(text(
            "SELECT max(entry_no) FROM consent_records WHERE clinic_id = :c"),
            {"c": w.clinic}).scalar_one()
    assert top < 9000000000000000000
    revoked = w.revoke(first)
    w.agree({M: ("withdrawn", "", first)})
    with pytest.raises(DBAPIError, match=r"permission denied|append-only"), \
            tenant_session(w.box.database, w.clinic, ME.id, "admin") as s:
        s.execute(text("UPDATE consent_records SET entry_no = 1 WHERE id = :i"),
                  {"i": revoked})


def test_concurrent_appends_leave_the_summary_of_the_last_commit(w: World) -> None:
    """Two transactions append for one patient at once (another purpose's grant, and a
    revocation): the one that commits last must see the other's row, or the summary would
    keep a state the ledger no longer has."""
    granted = w.grant(M, "m1")
    started, done = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def revoke_meanwhile() -> None:
        try:
            started.wait(10)
            w.revoke(granted)  # its summary must wait for, then see, the research grant
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            done.set()

    worker = threading.Thread(target=revoke_meanwhile)
    worker.start()
    with w.uow() as tx:
        research = tx.consents.add(ConsentCreate(
            patient_id=w.patient, purpose=R, terms_version="r1", terms_hash=TERMS,
            collection_method=CollectionMethod.DIGITAL_SIGNATURE))
        started.set()
        done.wait(1.5)  # the revocation runs now; it must not finish before this commits
        finished_early = done.is_set()
        tx.commit()
    worker.join(20)
    assert not errors, errors
    assert not finished_early
    w.agree({M: ("withdrawn", "", granted), R: ("given", "r1", research.id)})
