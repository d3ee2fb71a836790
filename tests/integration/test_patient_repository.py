"""The patient repository on a real PostgreSQL: encryption, lookups, locking, paging, RLS."""

from __future__ import annotations

import base64
import uuid

import pytest
from sqlalchemy import text

from neonpro.bootstrap import Container
from neonpro.domain import values
from neonpro.domain.actors import Actor
from neonpro.domain.errors import Conflict, Forbidden, NotFound, StaleVersion, ValidationFailed
from neonpro.domain.paging import FIRST_KEYSET_PAGE, Direction, PageRequest
from neonpro.domain.schemas.patient import (
    PatientCreate,
    PatientFilters,
    PatientSort,
    PatientSortField,
    PatientUpdate,
)
from neonpro.services import patients as svc
from tests.factories import ACTOR, seed_clinic
from tests.sessions import service_session
from tests.valid import cns, cpf

STAFF = Actor(ACTOR, "receptionist")


@pytest.fixture
def clinics(container: Container) -> tuple[uuid.UUID, uuid.UUID]:
    with service_session(container.database, ACTOR) as session:
        return seed_clinic(session, "A"), seed_clinic(session, "B")


def _new(name: str = "Maria José da Silva", **kw: object) -> PatientCreate:
    return PatientCreate(full_name=name, **kw)  # type: ignore[arg-type]


def test_add_then_get_round_trips_every_encrypted_field(
    container: Container, clinics: tuple[uuid.UUID, uuid.UUID]
) -> None:
    a, _ = clinics
    number, card = cpf(1), cns(1)
    created = svc.register_patient(container.uow(a, STAFF), _new(
        cpf=number, cns=card, rg="12.345.678-9", passport_number="FX123456",
        emergency_contact_cpf=cpf(2), patient_notes="alergia a dipirona",
        internal_notes="prefere manhã", phone_primary="(11) 98765-4321", postal_code="01310-100",
        state="sp", email="Maria@Example.COM", blood_type="o+",
    ))
    got = svc.get_patient(container.uow(a, STAFF), created.id)
    assert got == created
    assert got.cpf == number
    assert got.cns == card
    assert got.patient_notes == "alergia a dipirona"
    assert got.phone_primary == "11987654321"
    assert got.postal_code == "01310100"
    assert got.state == "SP"
    assert got.email == "Maria@example.com"
    assert got.blood_type == "O+"
    assert got.version == 1
    assert got.created_by == ACTOR
    assert got.medical_record_number.startswith("P-")


def test_sensitive_values_are_ciphertext_at_rest(
    container: Container, clinics: tuple[uuid.UUID, uuid.UUID]
) -> None:
    a, _ = clinics
    number = cpf(3)
    created = svc.register_patient(container.uow(a, STAFF), _new(cpf=number,
                                                                  patient_notes="diabetes"))
    with service_session(container.database, ACTOR) as session:
        row = session.execute(text(
            "SELECT cpf_encrypted, cpf_blind_index, patient_notes_encrypted, "
            "encode(cpf_encrypted, 'escape') AS raw FROM patients WHERE id = :id"
        ), {"id": created.id}).one()
    assert number.encode() not in bytes(row.cpf_encrypted)
    assert b"diabetes" not in bytes(row.patient_notes_encrypted)
    assert len(bytes(row.cpf_blind_index)) == 32


def test_ciphertext_copied_to_another_row_does_not_decrypt(
    container: Container, clinics: tuple[uuid.UUID, uuid.UUID]
) -> None:
    a, _ = clinics
    first = svc.register_patient(container.uow(a, STAFF), _new(cpf=cpf(4)))
    second = svc.register_patient(container.uow(a, STAFF), _new("Other"))
    with service_session(container.database, ACTOR) as session:
        session.execute(text(
            # the clinic named in both parts: Citus runs the copy on that clinic's shard
            "UPDATE patients SET cpf_encrypted = (SELECT cpf_encrypted FROM patients "
            "WHERE clinic_id = :c AND id = :src) WHERE clinic_id = :c AND id = :dst"
        ), {"c": a, "src": first.id, "dst": second.id})
    from neonpro.adapters.crypto import DecryptionError  # noqa: PLC0415

    with pytest.raises(DecryptionError, match="another row"):
        svc.get_patient(container.uow(a, STAFF), second.id)


def test_find_by_cpf_and_cns_use_the_blind_index(
    container: Container, clinics: tuple[uuid.UUID, uuid.UUID]
) -> None:
    a, b = clinics
    number, card = cpf(5), cns(5)
    created = svc.register_patient(container.uow(a, STAFF), _new(cpf=number, cns=card))
    masked = values.Cpf.parse(number).masked()
    assert svc.find_patient_by_cpf(container.uow(a, STAFF), masked) == created
    with container.uow(a, STAFF) as tx:
        assert tx.patients.find_by_cns(values.Cns.parse(card)) == created
    assert svc.find_patient_by_cpf(container.uow(b, STAFF), number) is None


def test_same_cpf_is_unique_per_clinic_not_globally(
    container: Container, clinics: tuple[uuid.UUID, uuid.UUID]
) -> None:
    a, b = clinics
    number = cpf(6)
    svc.register_patient(container.uow(a, STAFF), _new(cpf=number))
    with pytest.raises(Conflict) as err:
        svc.register_patient(container.uow(a, STAFF), _new("Someone Else", cpf=number))
    assert err.value.field == "cpf"
    assert number not in str(err.value)
    in_b = svc.register_patient(container.uow(b, STAFF), _new(cpf=number))
    with container.service_uow(Actor(ACTOR, "system")) as tx:
        found = tx.patients.find_by_cpf_across_clinics(values.Cpf.parse(number))
    assert {p.clinic_id for p in found} == {a, b}
    assert in_b.id in {p.id for p in found}


def test_cross_clinic_lookup_needs_the_service_role(
    container: Container, clinics: tuple[uuid.UUID, uuid.UUID]
) -> None:
    a, _ = clinics
    with pytest.raises(Forbidden), container.uow(a, STAFF) as tx:
        tx.patients.find_by_cpf_across_clinics(values.Cpf.parse(cpf(7)))


def test_update_with_optimistic_locking(
    container: Container, clinics: tuple[uuid.UUID, uuid.UUID]
) -> None:
    a, _ = clinics
    created = svc.register_patient(container.uow(a, STAFF), _new(cpf=cpf(8)))
    updated = svc.update_patient(container.uow(a, STAFF), created.id,
                                 PatientUpdate(version=1, city="Recife", cns=cns(8)))
    assert updated.version == 2
    assert updated.city == "Recife"
    assert updated.cns == cns(8)
    assert updated.cpf == cpf(8)  # untouched fields stay
    with pytest.raises(StaleVersion):
        svc.update_patient(container.uow(a, STAFF), created.id,
                           PatientUpdate(version=1, city="Olinda"))
    assert svc.get_patient(container.uow(a, STAFF), created.id).city == "Recife"


def test_update_of_another_clinics_patient_is_not_found(
    container: Container, clinics: tuple[uuid.UUID, uuid.UUID]
) -> None:
    a, b = clinics
    created = svc.register_patient(container.uow(a, STAFF), _new())
    with pytest.raises(NotFound):
        svc.update_patient(container.uow(b, STAFF), created.id,
                           PatientUpdate(version=1, city="X"))
    with pytest.raises(NotFound):
        svc.get_patient(container.uow(b, STAFF), created.id)


def test_soft_delete_hides_the_patient(
    container: Container, clinics: tuple[uuid.UUID, uuid.UUID]
) -> None:
    a, _ = clinics
    created = svc.register_patient(container.uow(a, STAFF), _new("To Delete", cpf=cpf(9)))
    svc.delete_patient(container.uow(a, STAFF), created.id, version=1)
    with pytest.raises(NotFound):
        svc.get_patient(container.uow(a, STAFF), created.id)
    assert svc.find_patient_by_cpf(container.uow(a, STAFF), cpf(9)) is None
    listed = svc.search_patients(container.uow(a, STAFF), PatientFilters(name="to delete",
                                                                        is_active=None))
    assert listed.items == []
    kept = svc.search_patients(container.uow(a, STAFF),
                               PatientFilters(name="to delete", is_active=None,
                                              include_deleted=True))
    assert [p.id for p in kept.items] == [created.id]


def test_rolled_back_unit_of_work_leaves_nothing(
    container: Container, clinics: tuple[uuid.UUID, uuid.UUID]
) -> None:
    a, _ = clinics
    with container.uow(a, STAFF) as tx:
        ghost = tx.patients.add(_new("Ghost Patient"))  # no commit: rolled back
    with pytest.raises(NotFound):
        svc.get_patient(container.uow(a, STAFF), ghost.id)


def test_name_search_ignores_case_and_accents(
    container: Container, clinics: tuple[uuid.UUID, uuid.UUID]
) -> None:
    a, b = clinics
    joao = svc.register_patient(container.uow(a, STAFF), _new("João Conceição Araújo"))
    svc.register_patient(container.uow(b, STAFF), _new("João Conceição Araújo"))
    for query in ("conceicao", "JOÃO", "araujo", "ção ara"):
        page = svc.search_patients(container.uow(a, STAFF), PatientFilters(name=query))
        assert [p.id for p in page.items] == [joao.id], query
        assert page.total == 1
    wildcard = svc.search_patients(container.uow(a, STAFF), PatientFilters(name="%"))
    assert wildcard.items == []


def test_offset_and_keyset_pages_agree(
    container: Container, clinics: tuple[uuid.UUID, uuid.UUID]
) -> None:
    _, b = clinics
    for i in range(23):
        svc.register_patient(container.uow(b, STAFF), _new(f"Paging Person {i:02d}"))
    filters = PatientFilters(name="paging person")
    sort = PatientSort(PatientSortField.FULL_NAME, Direction.DESC)
    by_offset = []
    for offset in range(0, 30, 10):
        page = svc.search_patients(container.uow(b, STAFF), filters, sort,
                                   PageRequest(limit=10, offset=offset))
        assert page.total == 23
        by_offset += [p.full_name for p in page.items]
    by_cursor, cursor = [], FIRST_KEYSET_PAGE
    while cursor is not None:
        page = svc.search_patients(container.uow(b, STAFF), filters, sort,
                                   PageRequest(limit=10, cursor=cursor))
        by_cursor += [p.full_name for p in page.items]
        cursor = page.next_cursor
    expected = [f"Paging Person {i:02d}" for i in reversed(range(23))]
    assert by_offset == expected
    assert by_cursor == expected


def test_keyset_by_created_at(container: Container, clinics: tuple[uuid.UUID, uuid.UUID]) -> None:
    a, _ = clinics
    made = [svc.register_patient(container.uow(a, STAFF), _new(f"Keyset {i}")).id
            for i in range(5)]
    seen, cursor = [], FIRST_KEYSET_PAGE
    while cursor is not None:
        page = svc.search_patients(container.uow(a, STAFF), PatientFilters(name="keyset"),
                                   PatientSort(PatientSortField.CREATED_AT),
                                   PageRequest(limit=2, cursor=cursor, with_total=False))
        assert page.total is None
        seen += [p.id for p in page.items]
        cursor = page.next_cursor
    assert seen == made


def test_keyset_cursors_are_opaque_and_bound_to_their_clinic_and_query(
    container: Container, clinics: tuple[uuid.UUID, uuid.UUID]
) -> None:
    """A cursor carries no name in any encoding, and an altered cursor, or one replayed in
    another clinic or against another query, is refused as a 4xx (never a 500)."""
    a, b = clinics
    for i in range(3):
        svc.register_patient(container.uow(a, STAFF), _new(f"Cursora Secreta {i}"))
    svc.register_patient(container.uow(b, STAFF), _new("Cursora Secreta B"))
    filters = PatientFilters(name="cursora")
    sort = PatientSort(PatientSortField.FULL_NAME)
    page = svc.search_patients(container.uow(a, STAFF), filters, sort,
                               PageRequest(limit=1, cursor=FIRST_KEYSET_PAGE))
    cursor = page.next_cursor
    assert cursor is not None
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    assert b"cursora" not in raw.lower()
    nxt = svc.search_patients(container.uow(a, STAFF), filters, sort,
                              PageRequest(limit=1, cursor=cursor))
    assert [p.full_name for p in nxt.items] == ["Cursora Secreta 1"]
    flipped = cursor[:-3] + ("A" if cursor[-3] != "A" else "B") + cursor[-2:]
    forged = base64.urlsafe_b64encode(b'["Cursora Secreta 0","' + str(uuid.uuid4()).encode()
                                      + b'"]').decode()
    attempts = [
        (a, filters, sort, flipped),  # altered
        (a, filters, sort, forged),  # the old plain format: values the client chose
        (a, filters, sort, "!!not base64!!"),
        (b, filters, sort, cursor),  # another clinic
        (a, PatientFilters(name="cursor"), sort, cursor),  # another filter
        (a, filters, PatientSort(PatientSortField.FULL_NAME, Direction.DESC), cursor),
        (a, filters, PatientSort(PatientSortField.CREATED_AT), cursor),  # another sort
    ]
    for clinic, f, s, c in attempts:
        with pytest.raises(ValidationFailed):
            svc.search_patients(container.uow(clinic, STAFF), f, s,
                                PageRequest(limit=1, cursor=c))
