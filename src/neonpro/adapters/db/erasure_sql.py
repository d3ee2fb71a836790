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
# "ANON-" and the row id's hex digits (12 random ones before revision 0018)
ANONYMOUS_RECORD_NUMBER = "^ANON-([0-9A-F]{12}|[0-9A-F]{32})$"
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


# The request an erasure names as its grounds (``erasure_ledger.request_id``) is a
# data-subject request of the same clinic and patient. Not a foreign key: a restore
# re-applies ledger entries decided after its backup, whose request the restored database
# never held (the ledger's ``patient_id`` has no foreign key for the same reason), so a
# request this database does not hold at all is let through, one of another clinic or
# patient is refused; and a request an erasure names keeps its clinic, patient and id and
# is not deleted. Both checks run as the invoking role: the service role (the only one
# granted INSERT on the ledger) sees every request; the application role, which may change
# requests, sees its clinic's ledger, where the entries naming its requests are.
REQUEST_KEY = "fk_erasure_ledger_request_data_subject_requests"


def request_ddl() -> list[str]:
    """The two halves of the ledger's reference to its request (migration 0014)."""
    return [
        f"""CREATE FUNCTION neonpro_erasure_request_check() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM data_subject_requests r WHERE r.clinic_id = NEW.clinic_id
                 AND r.patient_id = NEW.patient_id AND r.id = NEW.request_id)
     AND EXISTS (SELECT 1 FROM data_subject_requests r WHERE r.id = NEW.request_id) THEN
    RAISE EXCEPTION 'an erasure names as its grounds a data-subject request of its own '
      'clinic and patient'
      USING ERRCODE = 'foreign_key_violation', CONSTRAINT = '{REQUEST_KEY}';
  END IF;
  RETURN NEW;
END
$$""",  # noqa: S608  (a constant's name, no input)
        f"""CREATE FUNCTION neonpro_erasure_request_kept() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND (NEW.clinic_id, NEW.patient_id, NEW.id)
                          = (OLD.clinic_id, OLD.patient_id, OLD.id) THEN
    RETURN NEW;
  END IF;
  IF EXISTS (SELECT 1 FROM erasure_ledger e WHERE e.clinic_id = OLD.clinic_id
             AND e.request_id = OLD.id) THEN
    RAISE EXCEPTION 'a data-subject request an erasure names keeps its clinic, patient and id'
      USING ERRCODE = 'foreign_key_violation', CONSTRAINT = '{REQUEST_KEY}',
            DETAIL = 'the request is still referenced from the erasure ledger';
  END IF;
  RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END
$$""",  # noqa: S608  (a constant's name, no input)
        "CREATE TRIGGER erasure_ledger_request_check BEFORE INSERT ON erasure_ledger "
        "FOR EACH ROW WHEN (NEW.request_id IS NOT NULL) "
        "EXECUTE FUNCTION neonpro_erasure_request_check()",
        "CREATE TRIGGER data_subject_requests_erasure_kept BEFORE UPDATE OR DELETE ON "
        "data_subject_requests FOR EACH ROW EXECUTE FUNCTION neonpro_erasure_request_kept()",
    ]


def erasure_ddl() -> list[str]:
    """The guard function and its trigger (after the tables exist), and the ledger's
    reference to its request."""
    return [
        guard_function(),
        f"CREATE TRIGGER {GUARD} BEFORE UPDATE ON patients FOR EACH ROW "
        f"WHEN ({ERASED_WHEN}) EXECUTE FUNCTION neonpro_patient_erased_guard()",
        *request_ddl(),
    ]
