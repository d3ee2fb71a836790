"""composite tenant foreign keys: a reference names a row of its own clinic (and patient)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 17:00:00+00:00

Issue 16: the services check that a reference stays inside the clinic, but SQL run as the
application role (row-level security bound to one clinic) went past them wherever the
foreign key named the referenced id alone, because a foreign key is checked past
row-level security: any clinic's row satisfied it.

* ``professionals.user_id``: ``(clinic_id, user_id)`` references ``clinic_memberships``
  (its key), so a professional links only a staff member of its own clinic, no longer any
  clinic's staff account; removing the membership unlinks it (``SET NULL (user_id)``).
  The foreign key to ``staff_users`` goes: a membership implies the account (its own
  foreign key cascades from ``staff_users``).
* ``disclosures.consent_record_id``: ``(clinic_id, patient_id, consent_record_id)``
  references ``consent_records (clinic_id, patient_id, id)`` (a new unique key), so a
  disclosure rests on a consent of the same patient, not on another patient's (the
  reference was already ``(clinic_id, consent_record_id)``: the clinic was held, not the
  patient).
* ``consent_records.supersedes_id``: likewise ``(clinic_id, patient_id, supersedes_id)``:
  a revocation, expiry or renewal changes a consent of its own patient (another patient's
  row would take that consent's one successor, ``(clinic_id, supersedes_id)`` being unique,
  and the consent could never be revoked again).
* ``erasure_ledger.request_id`` (the grounds of an erasure, which had no reference at all)
  names a data-subject request of the same clinic and patient, by two triggers rather than
  a foreign key (``erasure_sql.request_ddl``): a restore re-applies ledger entries decided
  after its backup, whose request the restored database never held (the ledger's
  ``patient_id`` has no foreign key for the same reason), so a request the database does
  not hold at all is let through while one of another clinic or patient is refused; and a
  request an erasure names keeps its clinic, patient and id and is not deleted (the
  application role could otherwise move it to another patient under the ledger's feet).
  The error names ``fk_erasure_ledger_request_data_subject_requests`` like a foreign key.

Every other reference between tenant tables already includes ``clinic_id``.

A row that breaks a new rule (a cross-clinic link made before this revision) makes the
upgrade fail with the rule, the count of rows, the constraint and the query that finds those rows, never their
values; nothing is changed or dropped silently. Fix the rows and upgrade again.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from neonpro.adapters.db.migrations import migration_roles

revision: str = '0014'
down_revision: str | Sequence[str] | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _checked(table: str | None, constraint: str, definition: str, rule: str, rows: str) -> str:
    """``ALTER TABLE .. ADD CONSTRAINT`` after counting the rows that break it (``rows``: the
    ``FROM .. WHERE`` that finds them): any, and the upgrade stops with the rule, the count
    and the query, never a value (the driver's own message would print the offending key).

    Run with row-level security not forced on the tables read (see ``upgrade``): PostgreSQL
    checks a new foreign key's existing rows with the migrating owner's query, which forced
    row-level security shows no tenant row, so the constraint would be added over violating
    rows without a word."""
    return (
        "DO $migration$\nDECLARE\n  n bigint;\nBEGIN\n"
        f"  SELECT count(*) INTO n {rows};\n"
        "  IF n > 0 THEN\n"
        f"    RAISE EXCEPTION 'migration 0014: % {rule}; fix those rows and upgrade again', n\n"
        f"      USING ERRCODE = 'foreign_key_violation', CONSTRAINT = '{constraint}',\n"
        "      HINT = 'the rows, as a role that bypasses row-level security: "
        f"SELECT clinic_id, id {rows}';\n"
        "  END IF;\n"
        + (f"  ALTER TABLE {table} ADD CONSTRAINT {constraint} {definition};\n" if table else "")
        + "END\n$migration$"
    )


# the tables whose existing rows the new keys are checked against
CHECKED_TABLES = ('professionals', 'clinic_memberships', 'disclosures', 'consent_records',
                  'erasure_ledger', 'data_subject_requests')

# frozen SQL of this revision
UPGRADE_SQL: tuple[str, ...] = (
    'ALTER TABLE professionals DROP CONSTRAINT fk_professionals_user_id_staff_users',
    _checked(
        'professionals', 'fk_professionals_clinic_id_user_id_clinic_memberships',
        'FOREIGN KEY (clinic_id, user_id) REFERENCES clinic_memberships (clinic_id, user_id) '
        'ON DELETE SET NULL (user_id)',
        "professionals link a staff account that is no member of their clinic "
        "(professionals.user_id)",
        'FROM professionals p WHERE p.user_id IS NOT NULL AND NOT EXISTS (SELECT FROM '
        'clinic_memberships m WHERE m.clinic_id = p.clinic_id AND m.user_id = p.user_id)'),
    'ALTER TABLE consent_records ADD CONSTRAINT uq_consent_records_clinic_id_patient_id_id '
    'UNIQUE (clinic_id, patient_id, id)',
    'ALTER TABLE consent_records DROP CONSTRAINT '
    'fk_consent_records_clinic_id_supersedes_id_consent_records',
    _checked(
        'consent_records', 'fk_consent_records_same_patient_consent_records',
        'FOREIGN KEY (clinic_id, patient_id, supersedes_id) REFERENCES consent_records '
        '(clinic_id, patient_id, id) ON DELETE SET NULL (supersedes_id)',
        "consent records change a consent of another patient (consent_records.supersedes_id)",
        'FROM consent_records c WHERE c.supersedes_id IS NOT NULL AND NOT EXISTS (SELECT FROM '
        'consent_records o WHERE o.clinic_id = c.clinic_id AND o.patient_id = c.patient_id '
        'AND o.id = c.supersedes_id)'),
    'ALTER TABLE disclosures DROP CONSTRAINT '
    'fk_disclosures_clinic_id_consent_record_id_consent_records',
    _checked(
        'disclosures', 'fk_disclosures_same_patient_consent_records',
        'FOREIGN KEY (clinic_id, patient_id, consent_record_id) REFERENCES consent_records '
        '(clinic_id, patient_id, id) ON DELETE SET NULL (consent_record_id)',
        "disclosures rest on a consent of another patient or clinic "
        "(disclosures.consent_record_id)",
        'FROM disclosures d WHERE d.consent_record_id IS NOT NULL AND NOT EXISTS (SELECT FROM '
        'consent_records c WHERE c.clinic_id = d.clinic_id AND c.patient_id = d.patient_id '
        'AND c.id = d.consent_record_id)'),
    _checked(
        None, 'fk_erasure_ledger_request_data_subject_requests', '',
        "erasure ledger entries name a data-subject request of another clinic or patient "
        "(erasure_ledger.request_id)",
        'FROM erasure_ledger e WHERE e.request_id IS NOT NULL AND NOT EXISTS (SELECT FROM '
        'data_subject_requests r WHERE r.clinic_id = e.clinic_id AND r.patient_id = '
        'e.patient_id AND r.id = e.request_id) AND EXISTS (SELECT FROM data_subject_requests r '
        'WHERE r.id = e.request_id)'),
    # frozen copy of erasure_sql.request_ddl at this revision
    "CREATE FUNCTION neonpro_erasure_request_check() RETURNS trigger\nLANGUAGE plpgsql AS $$\nBEGIN\n  IF NOT EXISTS (SELECT FROM data_subject_requests r WHERE r.clinic_id = NEW.clinic_id\n                 AND r.patient_id = NEW.patient_id AND r.id = NEW.request_id)\n     AND EXISTS (SELECT FROM data_subject_requests r WHERE r.id = NEW.request_id) THEN\n    RAISE EXCEPTION 'an erasure names as its grounds a data-subject request of its own '\n      'clinic and patient'\n      USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'fk_erasure_ledger_request_data_subject_requests';\n  END IF;\n  RETURN NEW;\nEND\n$$",
    "CREATE FUNCTION neonpro_erasure_request_kept() RETURNS trigger\nLANGUAGE plpgsql AS $$\nBEGIN\n  IF TG_OP = 'UPDATE' AND (NEW.clinic_id, NEW.patient_id, NEW.id)\n                          = (OLD.clinic_id, OLD.patient_id, OLD.id) THEN\n    RETURN NEW;\n  END IF;\n  IF EXISTS (SELECT FROM erasure_ledger e WHERE e.clinic_id = OLD.clinic_id\n             AND e.request_id = OLD.id) THEN\n    RAISE EXCEPTION 'a data-subject request an erasure names keeps its clinic, patient and id'\n      USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'fk_erasure_ledger_request_data_subject_requests',\n            DETAIL = 'the request is still referenced from the erasure ledger';\n  END IF;\n  RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;\nEND\n$$",
    'CREATE TRIGGER erasure_ledger_request_check BEFORE INSERT ON erasure_ledger FOR EACH ROW WHEN (NEW.request_id IS NOT NULL) EXECUTE FUNCTION neonpro_erasure_request_check()',
    'CREATE TRIGGER data_subject_requests_erasure_kept BEFORE UPDATE OR DELETE ON data_subject_requests FOR EACH ROW EXECUTE FUNCTION neonpro_erasure_request_kept()',
)
DOWNGRADE_SQL: tuple[str, ...] = (
    'DROP TRIGGER IF EXISTS data_subject_requests_erasure_kept ON data_subject_requests',
    'DROP TRIGGER IF EXISTS erasure_ledger_request_check ON erasure_ledger',
    'DROP FUNCTION IF EXISTS neonpro_erasure_request_kept()',
    'DROP FUNCTION IF EXISTS neonpro_erasure_request_check()',
    'ALTER TABLE disclosures DROP CONSTRAINT IF EXISTS '
    'fk_disclosures_same_patient_consent_records',
    'ALTER TABLE disclosures ADD CONSTRAINT '
    'fk_disclosures_clinic_id_consent_record_id_consent_records FOREIGN KEY (clinic_id, '
    'consent_record_id) REFERENCES consent_records (clinic_id, id) '
    'ON DELETE SET NULL (consent_record_id)',
    'ALTER TABLE consent_records DROP CONSTRAINT IF EXISTS '
    'fk_consent_records_same_patient_consent_records',
    'ALTER TABLE consent_records ADD CONSTRAINT '
    'fk_consent_records_clinic_id_supersedes_id_consent_records FOREIGN KEY (clinic_id, '
    'supersedes_id) REFERENCES consent_records (clinic_id, id) '
    'ON DELETE SET NULL (supersedes_id)',
    'ALTER TABLE consent_records DROP CONSTRAINT IF EXISTS '
    'uq_consent_records_clinic_id_patient_id_id',
    'ALTER TABLE professionals DROP CONSTRAINT IF EXISTS '
    'fk_professionals_clinic_id_user_id_clinic_memberships',
    'ALTER TABLE professionals ADD CONSTRAINT fk_professionals_user_id_staff_users '
    'FOREIGN KEY (user_id) REFERENCES staff_users (id) ON DELETE SET NULL',
)


def _run(statements: tuple[str, ...]) -> None:
    roles = migration_roles()
    for statement in statements:
        op.execute(statement.replace("{owner}", roles.owner).replace("{app}", roles.app)
                   .replace("{service}", roles.service)
                   .replace("{legal_hold}", roles.legal_hold))


def upgrade() -> None:
    # as the owner, past row-level security for the checks (the lock this takes is held to
    # the end of the migration's transaction: no row changes meanwhile)
    for table in CHECKED_TABLES:
        op.execute(f'ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY')
    _run(UPGRADE_SQL)
    for table in CHECKED_TABLES:
        op.execute(f'ALTER TABLE {table} FORCE ROW LEVEL SECURITY')


def downgrade() -> None:
    _run(DOWNGRADE_SQL)
