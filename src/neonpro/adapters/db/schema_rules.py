"""Sharding-ready key rules, checked on the SQLAlchemy metadata.

A tenant table can be distributed by ``clinic_id`` (Citus) only when:

* its primary key starts with ``clinic_id``;
* every unique constraint and unique index includes ``clinic_id``;
* every foreign key to another tenant table includes ``clinic_id`` mapped to the
  referenced table's ``clinic_id`` (which also makes cross-clinic references
  impossible);
* a nullable reference is cleared with ``ON DELETE SET NULL (its nullable columns)``, so
  ``clinic_id`` itself is never nulled (nor a required column a reference may also carry:
  ``(clinic_id, patient_id, consent_record_id)`` names a consent *of that patient*, and
  clears ``consent_record_id`` only).
"""

from __future__ import annotations

import re

from sqlalchemy import ForeignKeyConstraint, MetaData, Table, UniqueConstraint

_SET_NULL = re.compile(r"^SET NULL\s*\((?P<cols>[^)]*)\)$", re.IGNORECASE)


def _tenant(table: Table) -> bool:
    return table.info.get("scope") == "tenant"


def _fk_problems(table: Table, fk: ForeignKeyConstraint) -> list[str]:
    target = fk.referred_table
    name = f"{table.name}.{fk.name}"
    if target.info.get("scope") != "tenant":
        return []
    pairs = {el.parent.name: el.column.name for el in fk.elements}
    problems = []
    if pairs.get("clinic_id") != "clinic_id":
        problems.append(f"{name}: foreign key to tenant table {target.name} lacks clinic_id")
    own = [c for c in fk.columns if c.name != "clinic_id"]
    nullable = {c.name for c in own if c.nullable}
    match = _SET_NULL.match((fk.ondelete or "").strip())
    listed = {c.strip() for c in match.group("cols").split(",")} if match else set()
    if nullable and listed != nullable:
        problems.append(f"{name}: nullable reference needs ON DELETE SET NULL (its own "
                        "nullable columns)")
    if not nullable and match:
        problems.append(f"{name}: SET NULL on a required reference")
    return problems


def table_problems(table: Table) -> list[str]:
    """Everything that keeps ``table`` from being distributed by clinic."""
    scope = table.info.get("scope")
    if scope not in ("tenant", "clinic", "global"):
        return [f"{table.name}: no scope in Table.info"]
    if not _tenant(table):
        return []
    problems = []
    if "clinic_id" not in table.columns or table.columns["clinic_id"].nullable:
        problems.append(f"{table.name}: clinic_id missing or nullable")
    pk = [c.name for c in table.primary_key.columns]
    if not pk or pk[0] != "clinic_id":
        problems.append(f"{table.name}: primary key {pk} does not start with clinic_id")
    for constraint in table.constraints:
        if isinstance(constraint, UniqueConstraint) and "clinic_id" not in constraint.columns:
            problems.append(f"{table.name}.{constraint.name}: unique without clinic_id")
        if isinstance(constraint, ForeignKeyConstraint):
            problems += _fk_problems(table, constraint)
    for index in table.indexes:
        cols = {c.name for c in index.columns}
        if index.unique and "clinic_id" not in cols:
            problems.append(f"{table.name}.{index.name}: unique index without clinic_id")
    return problems


def metadata_problems(metadata: MetaData) -> list[str]:
    out: list[str] = []
    for table in metadata.sorted_tables:
        out += table_problems(table)
    return out
