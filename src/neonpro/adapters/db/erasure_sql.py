"""Erased stays erased, enforced by the database: the guard on anonymized, blocked and
deleted patients.

Part of the expected DDL (see ``security.py``); migrations carry frozen copies. The function
is generated from the models' LGPD column declarations (``pii()``), so a new personal-data
column is guarded as soon as it is declared.

Once a patient is anonymized, blocked or (soft) deleted, an UPDATE of that row, by any role,
may only

* leave a personal-data column as it is, or set it to its erased value (NULL, or the
  column's empty default), or to its anonymized value (the placeholder name, an ``ANON-``
  record number, a date cut to January 1st of its own year, a CEP cut to its region);
* re-encrypt a ciphertext or re-key a blind index (key rotation: a value stays a value);
* change bookkeeping that is no personal data (flags, counters, the consent summary,
  version, who and when).

It may never clear ``anonymized_at`` or ``deleted_at``, nor ``blocked_at`` unless the same
statement anonymizes the row (a legal hold that ran out). So a stale correction cannot put a
name, a CPF or a phone back into an erased record, whoever sends it: the API, a job, or
someone running SQL as the application role. The error names the constraint
``patients_erased_guard`` (SQLSTATE 55000), which the adapters translate into a 410.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Column, Table

from neonpro.adapters.db.models import Patient
from neonpro.adapters.db.repositories.erasure import ANONYMOUS_NAME
from neonpro.domain.vocabulary import AnonymizationRule

GUARD = "patients_erased_guard"
ANONYMOUS_RECORD_NUMBER = "^ANON-[0-9A-F]{12}$"
# the row is erased once one of these is set; the trigger fires only then (WHEN clause)
ERASED_WHEN = ("OLD.anonymized_at IS NOT NULL OR OLD.blocked_at IS NOT NULL "
               "OR OLD.deleted_at IS NOT NULL")


def _erased_value(column: Column[Any]) -> str:
    default = column.server_default
    if column.nullable or default is None:
        return "NULL"
    return str(default.arg.text)  # type: ignore[attr-defined]


def _allowed(column: Column[Any]) -> str:
    """SQL true when NEW's value of ``column`` puts no personal data back."""
    name = column.name
    new, old = f"NEW.{name}", f"OLD.{name}"
    options = [f"{new} IS NOT DISTINCT FROM {old}", f"{new} IS NULL"]
    erased = _erased_value(column)
    if erased != "NULL":
        options.append(f"{new} = {erased}")
    if "ciphertext" in (column.comment or "") or name.endswith("_blind_index"):
        options.append(f"({old} IS NOT NULL AND {new} IS NOT NULL)")  # re-encrypted, re-keyed
    rule = column.info["lgpd"]["anonymize"]
    if rule is AnonymizationRule.REPLACE and name == "full_name":
        options.append(f"{new} = '{ANONYMOUS_NAME}'")
    elif rule is AnonymizationRule.REPLACE and name == "medical_record_number":
        options.append(f"{new} ~ '{ANONYMOUS_RECORD_NUMBER}'")
    elif rule is AnonymizationRule.GENERALIZE and name == "postal_code":
        options.append(f"{new} = left({old}, 5) || '000'")
    elif rule is AnonymizationRule.GENERALIZE:
        options.append(f"{new} = date_trunc('year', {old})::date")
    return "coalesce(" + " OR ".join(options) + ", false)"  # NULL OLD: a comparison is NULL


def _guarded_columns() -> list[Column[Any]]:
    table = cast(Table, Patient.__table__)
    return [c for c in table.columns if c.info.get("lgpd") and c.computed is None]


def guard_function() -> str:
    checks = "\n".join(
        f"  IF NOT {_allowed(c)} THEN v_column := '{c.name}'; END IF;" for c in _guarded_columns())
    return f"""CREATE FUNCTION neonpro_patient_erased_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  v_column text;
BEGIN
  IF (OLD.anonymized_at IS NOT NULL AND NEW.anonymized_at IS NULL)
     OR (OLD.deleted_at IS NOT NULL AND NEW.deleted_at IS NULL)
     OR (OLD.blocked_at IS NOT NULL AND NEW.blocked_at IS NULL AND NEW.anonymized_at IS NULL) THEN
    RAISE EXCEPTION 'patient % is erased: its erasure cannot be undone', OLD.id
      USING ERRCODE = 'object_not_in_prerequisite_state', CONSTRAINT = '{GUARD}';
  END IF;
{checks}
  IF v_column IS NOT NULL THEN
    RAISE EXCEPTION 'patient % is erased: % cannot be given a value again', OLD.id, v_column
      USING ERRCODE = 'object_not_in_prerequisite_state', CONSTRAINT = '{GUARD}';
  END IF;
  RETURN NEW;
END
$$"""


def erasure_ddl() -> list[str]:
    """The guard function and its trigger (after the tables exist)."""
    return [
        guard_function(),
        f"CREATE TRIGGER {GUARD} BEFORE UPDATE ON patients FOR EACH ROW "
        f"WHEN ({ERASED_WHEN}) EXECUTE FUNCTION neonpro_patient_erased_guard()",
    ]
