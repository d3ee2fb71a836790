"""Patients in SQL: encryption and blind indexes in the mapping, optimistic locking, paging.

Every statement names ``clinic_id`` explicitly besides row-level security: the
planner then uses the clinic-first indexes whatever the policy expression looks like.
Soft-deleted rows are hidden unless a filter asks for them.
"""

from __future__ import annotations

import builtins
import functools
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import (
    ColumnElement,
    Integer,
    Table,
    and_,
    bindparam,
    func,
    insert,
    select,
    text,
    tuple_,
    update,
)

from neonpro.adapters.db.hot import HotStatement, bound_values, value_binds
from neonpro.adapters.db.models import Patient
from neonpro.adapters.db.repositories._base import SqlRepository
from neonpro.domain.errors import (
    Forbidden,
    NotFound,
    PatientDeleted,
    PatientErased,
    StaleVersion,
)
from neonpro.domain.paging import Direction, Page, PageRequest, query_scope
from neonpro.domain.schemas.patient import (
    READ_FIELDS,
    PatientCreate,
    PatientFilters,
    PatientRead,
    PatientSort,
    PatientSortField,
    PatientUpdate,
)
from neonpro.domain.text import fold_for_search, like_escape

if TYPE_CHECKING:
    from neonpro.domain import values

TABLE = cast(Table, Patient.__table__)
T = TABLE.c
NAME = "patients"

# domain field -> ciphertext column; CPF and CNS also get a blind index of their digits
ENCRYPTED: dict[str, str] = {
    "cpf": "cpf_encrypted",
    "cns": "cns_encrypted",
    "rg": "rg_encrypted",
    "passport_number": "passport_number_encrypted",
    "emergency_contact_cpf": "emergency_contact_cpf_encrypted",
    "patient_notes": "patient_notes_encrypted",
    "internal_notes": "internal_notes_encrypted",
}
BLIND: dict[str, str] = {"cpf": "cpf_blind_index", "cns": "cns_blind_index"}

_PLAIN_READ = [f for f in READ_FIELDS if f not in ENCRYPTED]
READ_COLUMNS = [T[f] for f in _PLAIN_READ] + [T[c] for c in ENCRYPTED.values()]

_VISIBLE = T.deleted_at.is_(None)
_NOT_ERASED = T.anonymized_at.is_(None)  # blocked rows the application role never sees
_BY_ID = and_(T.clinic_id == bindparam("b_clinic"), T.id == bindparam("b_id"))
# the reads every request makes: compiled once, run on the driver (hot.py)
GET = HotStatement(select(*READ_COLUMNS).where(_BY_ID, _VISIBLE))
GET_ANY = select(*READ_COLUMNS).where(_BY_ID)
BY_CPF = HotStatement(select(*READ_COLUMNS).where(
    T.clinic_id == bindparam("b_clinic"), T.cpf_blind_index == bindparam("bi"), _VISIBLE
))
BY_CNS = HotStatement(select(*READ_COLUMNS).where(
    T.clinic_id == bindparam("b_clinic"), T.cns_blind_index == bindparam("bi"), _VISIBLE
))
BY_CPF_ALL_CLINICS = select(*READ_COLUMNS).where(
    T.cpf_blind_index == bindparam("bi"), _VISIBLE
).order_by(T.clinic_id)
# why a write found no row: gone, erased (the ledger also knows a blocked record, which the
# application role cannot see), deleted, or another version
STATE_OF = text(
    "SELECT p.version, p.anonymized_at IS NOT NULL, p.deleted_at IS NOT NULL, EXISTS ("
    "  SELECT 1 FROM erasure_ledger l WHERE l.clinic_id = :b_clinic AND l.patient_id = :b_id)"
    " FROM (SELECT 1) one LEFT JOIN patients p ON p.clinic_id = :b_clinic AND p.id = :b_id")


@functools.lru_cache(maxsize=256)
def _insert(columns: tuple[str, ...]) -> HotStatement:
    """The INSERT of one set of columns (those the patient gives; the others keep their
    defaults), bound as ``v_<column>``: compiled once per set, run on the driver (hot.py)."""
    return HotStatement(insert(TABLE).values(value_binds(TABLE, columns))
                        .returning(*READ_COLUMNS))


@functools.lru_cache(maxsize=256)
def _update(columns: tuple[str, ...]) -> HotStatement:
    """The versioned UPDATE of ``columns`` (bound as ``v_<column>``), once per set."""
    return HotStatement(
        update(TABLE)
        .where(_BY_ID, _VISIBLE, _NOT_ERASED, T.version == bindparam("b_version"))
        .values({**value_binds(TABLE, columns), T.version: T.version + 1})
        .returning(*READ_COLUMNS))


SORT_COLUMNS = {
    PatientSortField.FULL_NAME: T.full_name,
    PatientSortField.CREATED_AT: T.created_at,
    PatientSortField.UPDATED_AT: T.updated_at,
}


# list filters: the condition on its parameter ``f_<name>`` (see _filter_values)
_FILTERS: dict[str, Callable[[Any], ColumnElement[bool]]] = {
    "name": lambda b: T.search_name.like(b, escape="\\"),
    "consent_status": lambda b: T.data_consent_status == b,
    "primary_professional_id": lambda b: T.primary_professional_id == b,
    "created_from": lambda b: T.created_at >= b,
    "created_to": lambda b: T.created_at < b,
    "last_visit_from": lambda b: T.last_visit_date >= b,
    "last_visit_to": lambda b: T.last_visit_date <= b,
    "min_no_show_risk": lambda b: T.no_show_risk_score >= b,
}


def _filter_values(f: PatientFilters) -> dict[str, Any]:
    """The filters given, as the parameters ``f_<name>`` of :data:`_FILTERS`' conditions."""
    values: dict[str, Any] = {
        "name": "%" + like_escape(fold_for_search(f.name.strip())) + "%" if f.name else None,
        "consent_status": None if f.consent_status is None else f.consent_status.value,
        "primary_professional_id": f.primary_professional_id,
        "created_from": f.created_from, "created_to": f.created_to,
        "last_visit_from": f.last_visit_from, "last_visit_to": f.last_visit_to,
        "min_no_show_risk": f.min_no_show_risk,
    }
    return {f"f_{name}": value for name, value in values.items() if value is not None}


def _where(given: tuple[str, ...], include_deleted: bool,  # noqa: FBT001
           is_active: bool | None) -> builtins.list[ColumnElement[bool]]:  # noqa: FBT001
    out = [T.clinic_id == bindparam("b_clinic")]
    if not include_deleted:
        out.append(_VISIBLE)
    if is_active is not None:
        out.append(T.is_active.is_(is_active))
    # a bind compared with a column takes the column's type
    out += [_FILTERS[name.removeprefix("f_")](bindparam(name)) for name in given]
    return out


@functools.lru_cache(maxsize=256)
def _list_statement(given: tuple[str, ...], include_deleted: bool,  # noqa: FBT001
                    is_active: bool | None, field: PatientSortField,  # noqa: FBT001
                    desc: bool, after: bool, offset: bool) -> HotStatement:  # noqa: FBT001
    """A page of patients for one shape of filters, sort and paging: compiled once per
    shape, its values bound (hot.py)."""
    column = SORT_COLUMNS[field]
    query = select(*READ_COLUMNS).where(*_where(given, include_deleted, is_active))
    if after:
        key = tuple_(column, T.id)
        bound = tuple_(bindparam("k_value", type_=column.type),
                       bindparam("k_id", type_=T.id.type))
        query = query.where(key < bound if desc else key > bound)
    order = (column.desc(), T.id.desc()) if desc else (column.asc(), T.id.asc())
    query = query.order_by(*order).limit(bindparam("b_limit", type_=Integer))
    if offset:
        query = query.offset(bindparam("b_offset", type_=Integer))
    return HotStatement(query)


@functools.lru_cache(maxsize=256)
def _count_statement(given: tuple[str, ...], include_deleted: bool,  # noqa: FBT001
                     is_active: bool | None) -> HotStatement:  # noqa: FBT001
    return HotStatement(select(func.count().label("count")).select_from(TABLE).where(
        *_where(given, include_deleted, is_active)))


def _mrn(patient_id: uuid.UUID) -> str:
    """A record number when the clinic gives none: unique per clinic by construction."""
    return "P-" + patient_id.hex[:12].upper()


class SqlPatientRepository(SqlRepository):
    """The patient repository of one unit of work."""

    __slots__ = ()

    # ------------------------------------------------------------ mapping
    def _to_row(self, patient_id: uuid.UUID, fields: dict[str, Any]) -> dict[str, Any]:
        cipher, blind = self._uow.cipher, self._uow.blind
        row: dict[str, Any] = {}
        for name, value in fields.items():
            column = ENCRYPTED.get(name)
            if column is None:
                row[name] = value
                continue
            row[column] = (
                None if value is None
                else cipher.encrypt(value, table=NAME, column=column, row_id=patient_id)
            )
            if name in BLIND:
                row[BLIND[name]] = None if value is None else blind.index(name, value)
        return row

    def _to_read(self, row: Any) -> PatientRead:
        """A row (SQLAlchemy's, or a hot statement's dict) as the domain's patient."""
        data = row if isinstance(row, dict) else dict(row._mapping)  # noqa: SLF001  (public)
        cipher = self._uow.cipher
        patient_id = data["id"]
        for name, column in ENCRYPTED.items():
            blob = data.pop(column)
            data[name] = (
                None if blob is None
                else cipher.decrypt(blob, table=NAME, column=column, row_id=patient_id)
            )
        return PatientRead.model_construct(**data)

    # ------------------------------------------------------------ reads
    def get(self, patient_id: uuid.UUID) -> PatientRead:
        """The patient, or NotFound (also for soft-deleted and other clinics' patients)."""
        found = self.find(patient_id)
        if found is None:
            raise NotFound("patient", patient_id)
        return found

    def find(self, patient_id: uuid.UUID) -> PatientRead | None:
        return self._one(GET, {"b_clinic": self.clinic_id, "b_id": patient_id})

    def find_by_cpf(self, cpf: values.Cpf) -> PatientRead | None:
        """This clinic's patient with the CPF (looked up by its blind index)."""
        bi = self._uow.blind.index("cpf", cpf.digits)
        return self._one(BY_CPF, {"b_clinic": self.clinic_id, "bi": bi})

    def find_by_cns(self, cns: values.Cns) -> PatientRead | None:
        bi = self._uow.blind.index("cns", cns.digits)
        return self._one(BY_CNS, {"b_clinic": self.clinic_id, "bi": bi})

    def _one(self, statement: HotStatement, params: dict[str, Any]) -> PatientRead | None:
        rows = self._fetch(statement, params)
        return self._to_read(rows[0]) if rows else None

    def find_by_cpf_across_clinics(self, cpf: values.Cpf) -> builtins.list[PatientRead]:
        """Service role only: every clinic's patient with this CPF (one person, many clinics)."""
        if not self._uow.service:
            raise Forbidden("looking up a CPF across clinics needs the service role")
        bi = self._uow.blind.index("cpf", cpf.digits)
        return [self._to_read(r) for r in self._execute(BY_CPF_ALL_CLINICS, {"bi": bi})]

    def list(
        self,
        filters: PatientFilters | None = None,
        sort: PatientSort | None = None,
        page: PageRequest | None = None,
    ) -> Page[PatientRead]:
        """A page of patients with the total matching the filters."""
        filters = filters or PatientFilters()
        sort = sort or PatientSort()
        page = page or PageRequest()
        given = _filter_values(filters)
        params: dict[str, Any] = {"b_clinic": self.clinic_id, **given,
                                  "b_limit": page.limit + 1}
        scope = query_scope("patients", self.clinic_id, filters, sort.field, sort.direction)
        cursors = self._uow.blind.cursors
        after = bool(page.keyset and page.cursor)  # FIRST_KEYSET_PAGE ("") has no bound
        if page.keyset and page.cursor:
            value, last_id = cursors.open(page.cursor, scope, 2)
            params["k_value"] = (datetime.fromisoformat(value) if sort.field != "full_name"
                                 else value)
            params["k_id"] = uuid.UUID(last_id)
        if not page.keyset:
            params["b_offset"] = page.offset
        shape = (tuple(given), filters.include_deleted, filters.is_active)
        rows = self._fetch(_list_statement(
            *shape, sort.field, sort.direction is Direction.DESC, after, not page.keyset), params)
        items = [self._to_read(r) for r in rows[: page.limit]]
        next_cursor = None
        if len(rows) > page.limit and page.keyset:
            last = items[-1]
            value = getattr(last, sort.field.value)
            next_cursor = cursors.seal([
                value.isoformat() if isinstance(value, datetime) else value, str(last.id)
            ], scope)
        total = None
        if page.with_total:
            counted = self._fetch(_count_statement(*shape),
                                  {"b_clinic": self.clinic_id, **given})
            total = counted[0]["count"]
        return Page(items, total, next_cursor, page.limit, 0 if page.keyset else page.offset)

    # ------------------------------------------------------------ writes
    def add(self, data: PatientCreate) -> PatientRead:
        """Insert a validated patient; a duplicate CPF/CNS/record number is a Conflict."""
        patient_id = uuid.uuid4()
        fields = data.model_dump(exclude_none=True, mode="python")
        fields.setdefault("medical_record_number", _mrn(patient_id))
        row = self._to_row(patient_id, fields)
        actor = self._uow.actor.id
        row.update(id=patient_id, clinic_id=self.clinic_id, created_by=actor, updated_by=actor)
        return self._to_read(self._fetch(_insert(tuple(sorted(row))), bound_values(row))[0])

    def update(self, patient_id: uuid.UUID, data: PatientUpdate) -> PatientRead:
        """Apply the given fields if ``data.version`` is current, else StaleVersion."""
        changes = self._to_row(patient_id, data.changes())
        changes["updated_by"] = self._uow.actor.id
        rows = self._fetch(_update(tuple(sorted(changes))), {
            "b_clinic": self.clinic_id, "b_id": patient_id, "b_version": data.version,
            **bound_values(changes)})
        if not rows:
            self._raise_missing_or_stale(patient_id, data.version)
        return self._to_read(rows[0])

    def delete(self, patient_id: uuid.UUID, version: int | None = None) -> None:
        """Soft delete: the row stays (medical records are kept), hidden from every read."""
        statement = update(TABLE).where(_BY_ID, _VISIBLE, _NOT_ERASED).values(
            deleted_at=datetime.now(UTC), is_active=False, version=T.version + 1,
            updated_by=self._uow.actor.id,
        )
        if version is not None:
            statement = statement.where(T.version == version)
        result = self._execute(statement, {"b_clinic": self.clinic_id, "b_id": patient_id})
        if result.rowcount == 0:
            self._raise_missing_or_stale(patient_id, version)

    def known(self, patient_id: uuid.UUID) -> bool:
        """Whether the clinic has, or had, this patient (erased and deleted ones included:
        their ledgers are still theirs)."""
        version, _anonymized, _deleted, erased = tuple(self._execute(
            STATE_OF, {"b_clinic": self.clinic_id, "b_id": patient_id}).one())
        return version is not None or bool(erased)

    def _raise_missing_or_stale(self, patient_id: uuid.UUID, version: int | None) -> None:
        row = self._execute(STATE_OF, {"b_clinic": self.clinic_id, "b_id": patient_id}).one()
        current, anonymized, deleted, erased = cast(
            "tuple[int | None, bool | None, bool | None, bool]", tuple(row))
        if anonymized or erased:
            raise PatientErased(patient_id)
        if current is None:
            raise NotFound("patient", patient_id)
        if deleted:
            raise PatientDeleted(patient_id)
        if version is None:
            raise NotFound("patient", patient_id)
        raise StaleVersion("patient", patient_id, version)
