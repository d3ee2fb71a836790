"""Key upkeep in SQL (:class:`~neonpro.domain.ports_keys.KeyStore`): counting values per
key id, reading and guarded writing of re-encrypted values, re-indexing CPF/CNS.

Every statement runs in a short service-role transaction (``app.actor_id`` set for the
audit triggers) with a longer statement timeout: a full-table count or a keyset scan that
finds few rows may take a while on a big table. Table and column names come from the
repositories' own lists (checked identifiers), never from input.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import Connection, text
from sqlalchemy.exc import IntegrityError

from neonpro.adapters.crypto import BLOB_VERSION
from neonpro.adapters.db.errors import constraint_name
from neonpro.adapters.db.repositories import appointment as appointment_repo
from neonpro.adapters.db.repositories import patient as patient_repo
from neonpro.domain.ports_keys import (
    BlindIndexed,
    EncryptedColumn,
    IndexChange,
    IndexConflict,
    RowRef,
)

if TYPE_CHECKING:
    from neonpro.adapters.db.uow import SqlUnitOfWork
    from neonpro.domain.actors import Actor

SCAN_TIMEOUT: Final = "10min"

COLUMNS: Final[tuple[EncryptedColumn, ...]] = tuple(
    EncryptedColumn(patient_repo.NAME, column) for column in patient_repo.ENCRYPTED.values()
) + tuple(
    EncryptedColumn(appointment_repo.NAME, column)
    for column in appointment_repo.ENCRYPTED.values()
)
# blind-index kind -> (ciphertext column, index column) of patients
BLIND_COLUMNS: Final[dict[str, tuple[str, str]]] = {
    kind: (patient_repo.ENCRYPTED[kind], index) for kind, index in patient_repo.BLIND.items()
}

_REINDEX_WHERE = (
    "(cpf_encrypted IS NOT NULL OR cns_encrypted IS NOT NULL OR cpf_blind_index IS NOT NULL "
    "OR cns_blind_index IS NOT NULL)"
)
_REINDEX_SELECT = text(
    "SELECT clinic_id, id, cpf_encrypted, cns_encrypted, cpf_blind_index, "  # noqa: S608
    "cns_blind_index FROM patients WHERE (clinic_id, id) > (:after_clinic, :after_id) AND "
    f"{_REINDEX_WHERE} ORDER BY clinic_id, id LIMIT :lim"
)
_REINDEX_UPDATE = text(
    "UPDATE patients AS t SET "
    "cpf_blind_index = coalesce(v.cpf_new, t.cpf_blind_index), "
    "cns_blind_index = coalesce(v.cns_new, t.cns_blind_index) "
    "FROM unnest(CAST(:clinics AS uuid[]), CAST(:ids AS uuid[]), CAST(:cpf_ct AS bytea[]), "
    "CAST(:cns_ct AS bytea[]), CAST(:cpf_new AS bytea[]), CAST(:cns_new AS bytea[])) "
    "AS v(clinic_id, id, cpf_ct, cns_ct, cpf_new, cns_new) "
    "WHERE t.clinic_id = v.clinic_id AND t.id = v.id "
    "AND t.cpf_encrypted IS NOT DISTINCT FROM v.cpf_ct "
    "AND t.cns_encrypted IS NOT DISTINCT FROM v.cns_ct "
    "RETURNING t.id"
)


def _kid_sql(col: str) -> str:
    return (
        f"CASE WHEN octet_length({col}) >= 2 AND get_byte({col}, 0) = {BLOB_VERSION} "
        f"THEN substring({col} from 3 for get_byte({col}, 1)) END"
    )


def _select_sql(table: str, cols: Sequence[str]) -> str:
    todo = " OR ".join(
        f"({c} IS NOT NULL AND substring({c} from 1 for :hlen) <> :hdr)" for c in cols
    )
    return (
        f"SELECT clinic_id, id, {', '.join(cols)} FROM {table} "  # noqa: S608
        "WHERE (clinic_id, id) > (:after_clinic, :after_id) "
        f"AND ({todo}) ORDER BY clinic_id, id LIMIT :lim"
    )


def _update_sql(table: str, cols: Sequence[str]) -> str:
    sets = ", ".join(
        f"{c} = CASE WHEN v.n_{c} IS NOT NULL AND t.{c} = v.o_{c} THEN v.n_{c} ELSE t.{c} END"
        for c in cols
    )
    arrays = ", ".join(
        f"CAST(:o_{c} AS bytea[]), CAST(:n_{c} AS bytea[])" for c in cols
    )
    names = ", ".join(f"o_{c}, n_{c}" for c in cols)
    guard = " OR ".join(f"(v.n_{c} IS NOT NULL AND t.{c} = v.o_{c})" for c in cols)
    returning = ", ".join(f"t.{c} = v.n_{c} AS ok_{c}" for c in cols)
    return (
        f"UPDATE {table} AS t SET {sets} "  # noqa: S608
        f"FROM unnest(CAST(:clinics AS uuid[]), CAST(:ids AS uuid[]), {arrays}) "
        f"AS v(clinic_id, id, {names}) "
        f"WHERE t.clinic_id = v.clinic_id AND t.id = v.id AND ({guard}) "
        f"RETURNING t.clinic_id, t.id, {returning}"
    )


def _known(table: str, cols: Sequence[str]) -> None:
    """Only the encrypted columns of the repositories ever reach an f-string."""
    known = {(c.table, c.column) for c in COLUMNS}
    if any((table, c) not in known for c in cols):
        raise ValueError(f"not an encrypted column of {table}")


class SqlKeyBatch:
    """The statements of one key-upkeep transaction."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def key_counts(self, table: str, columns: Sequence[str]) -> list[tuple[str, bytes | None, int]]:
        _known(table, columns)
        pairs = ", ".join(f"('{c}', t.{c})" for c in columns)
        query = text(
            f"SELECT v.col, {_kid_sql('v.val')} AS kid, count(*) AS n "  # noqa: S608
            f"FROM {table} t CROSS JOIN LATERAL (VALUES {pairs}) AS v(col, val) "
            "WHERE v.val IS NOT NULL GROUP BY 1, 2"
        )
        return [(str(r.col), r.kid, int(r.n)) for r in self._conn.execute(query)]

    def rows_to_rotate(self, table: str, columns: Sequence[str], after: RowRef, limit: int,
                       header: bytes) -> list[Sequence[Any]]:
        _known(table, columns)
        return list(self._conn.execute(text(_select_sql(table, columns)), {
            "after_clinic": after[0], "after_id": after[1], "lim": limit,
            "hlen": len(header), "hdr": header,
        }).all())

    def write_rotation(self, table: str, columns: Sequence[str], refs: Sequence[RowRef],
                       old: Mapping[str, Sequence[bytes | None]],
                       new: Mapping[str, Sequence[bytes | None]]) -> dict[RowRef, dict[str, bool]]:
        _known(table, columns)
        params: dict[str, Any] = {"clinics": [r[0] for r in refs], "ids": [r[1] for r in refs]}
        for c in columns:
            params[f"o_{c}"] = list(old[c])
            params[f"n_{c}"] = list(new[c])
        return {
            (row.clinic_id, row.id): {c: bool(getattr(row, f"ok_{c}")) for c in columns}
            for row in self._conn.execute(text(_update_sql(table, columns)), params)
        }

    def rows_to_reindex(self, after: RowRef, limit: int) -> list[BlindIndexed]:
        rows = self._conn.execute(_REINDEX_SELECT, {
            "after_clinic": after[0], "after_id": after[1], "lim": limit}).all()
        return [BlindIndexed(
            row.clinic_id, row.id,
            {kind: _bytes(getattr(row, ct)) for kind, (ct, _bi) in BLIND_COLUMNS.items()},
            {kind: _bytes(getattr(row, bi)) for kind, (_ct, bi) in BLIND_COLUMNS.items()},
        ) for row in rows]

    def count_blind_indexed(self) -> int:
        query = text(f"SELECT count(*) FROM patients WHERE {_REINDEX_WHERE}")  # noqa: S608
        return int(self._conn.execute(query).scalar_one())

    def apply_index_changes(self, changes: Sequence[IndexChange]) -> int:
        result = self._conn.execute(_REINDEX_UPDATE, {
            "clinics": [c.clinic_id for c in changes], "ids": [c.id for c in changes],
            "cpf_ct": [c.cpf_ct for c in changes], "cns_ct": [c.cns_ct for c in changes],
            "cpf_new": [c.cpf_new for c in changes], "cns_new": [c.cns_new for c in changes],
        })
        return len(result.all())

    def conflict(self, change: IndexChange, exc: IntegrityError) -> IndexConflict:
        kind = "cns" if "cns" in constraint_name(exc) else "cpf"
        index = change.cns_new if kind == "cns" else change.cpf_new
        column = BLIND_COLUMNS[kind][1]
        other = self._conn.execute(
            text(f"SELECT id FROM patients WHERE clinic_id = :c AND {column} = :bi "  # noqa: S608
                 "AND id <> :id LIMIT 1"),
            {"c": change.clinic_id, "bi": index, "id": change.id},
        ).scalar()
        return IndexConflict(change.clinic_id, change.id, kind, other)

    def apply_one_by_one(self, changes: Sequence[IndexChange]) -> tuple[int, list[IndexConflict]]:
        written, conflicts = 0, []
        for change in changes:
            try:
                with self._conn.begin_nested():
                    written += self.apply_index_changes([change])
            except IntegrityError as exc:
                conflicts.append(self.conflict(change, exc))
        return written, conflicts


def _bytes(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


class SqlKeyStore:
    """Key upkeep's transactions, each a service unit of work of ``open_service``."""

    __slots__ = ("_open",)

    def __init__(self, open_service: Callable[[Actor], SqlUnitOfWork]) -> None:
        self._open = open_service

    @property
    def encrypted_columns(self) -> tuple[EncryptedColumn, ...]:
        return COLUMNS

    @property
    def blind_columns(self) -> Mapping[str, str]:
        return {kind: ct for kind, (ct, _bi) in BLIND_COLUMNS.items()}

    @contextmanager
    def transaction(self, actor: Actor) -> Iterator[SqlKeyBatch]:
        with self._open(actor) as tx:
            conn = tx.connection
            conn.execute(text("SELECT set_config('statement_timeout', :t, true)"),
                         {"t": SCAN_TIMEOUT})
            yield SqlKeyBatch(conn)
            tx.commit()

    def write_index_changes(self, actor: Actor, changes: Sequence[IndexChange],
                            ) -> tuple[int, list[IndexConflict]]:
        try:
            with self.transaction(actor) as batch:
                return batch.apply_index_changes(changes), []
        except IntegrityError:
            # a collision somewhere in the batch: redo it row by row to find which
            with self.transaction(actor) as batch:
                return batch.apply_one_by_one(changes)
