"""consent state: the latest decision per patient and purpose wins, in ledger order

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 14:30:00+00:00

* consent_records gets ``entry_no``: the order rows entered the ledger, assigned at insert
  by a trigger from a sequence (never by the insert itself, never the wall clock). Rows
  recorded before this revision are numbered in (clinic, patient, purpose, created_at)
  order: the table is clustered on that index, then the column added with the sequence as
  default (a table rewrite, no row trigger fires: the ledger stays append-only, its chain
  hashes do not cover ``entry_no`` and stay valid).
* ``neonpro_consent_state()`` gives, per patient and purpose, the latest decision (grant or
  revocation) and the state it puts the purpose in (given, expired, withdrawn); the
  patient's summary trigger (0004) is rewritten on it, and every summary recomputed.
  The recomputation runs with the patients' audit trigger disabled: every revision runs in
  one transaction, which cannot bind an audit context after its first statement; the
  summary is derived from ledger rows whose appends were each audited.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0012'
down_revision: str | Sequence[str] | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# frozen copies of consent_sql at this revision
ENTRY_SEQUENCE = 'CREATE SEQUENCE consent_records_entry_no_seq'
ENTRY_FUNCTION = "CREATE FUNCTION neonpro_consent_entry_no() RETURNS trigger\nLANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$\nBEGIN\n  -- the ledger's order: assigned here, never taken from the insert\n  NEW.entry_no := nextval('consent_records_entry_no_seq');\n  RETURN NEW;\nEND\n$$"
ENTRY_TRIGGER = 'CREATE TRIGGER consent_records_entry_no BEFORE INSERT ON consent_records FOR EACH ROW EXECUTE FUNCTION neonpro_consent_entry_no()'
STATE_FUNCTION = "CREATE FUNCTION neonpro_consent_state(p_now timestamptz DEFAULT now())\nRETURNS TABLE (\n    clinic_id uuid, patient_id uuid, purpose text, state text, decision text,\n    decision_id uuid, entry_no bigint, decided_at timestamptz, legal_basis text,\n    terms_version text, given_at timestamptz, expires_at timestamptz, data_categories text[],\n    expiry_recorded boolean)\nLANGUAGE sql STABLE AS $$\n  SELECT d.clinic_id, d.patient_id, d.purpose,\n    CASE WHEN d.status = 'revoked' THEN 'withdrawn'\n         WHEN d.expiry_recorded OR d.expires_at <= p_now THEN 'expired'\n         ELSE 'given' END,\n    d.status, d.id, d.entry_no,\n    CASE WHEN d.status = 'revoked' THEN d.revoked_at ELSE d.given_at END,\n    d.legal_basis, d.terms_version, d.given_at, d.expires_at, d.data_categories,\n    d.expiry_recorded\n  FROM (\n    SELECT DISTINCT ON (c.clinic_id, c.patient_id, c.purpose) c.clinic_id, c.patient_id,\n      c.purpose, c.status, c.id, c.entry_no, c.given_at, c.revoked_at, c.expires_at,\n      c.legal_basis, c.terms_version, c.data_categories,\n      c.status = 'granted' AND EXISTS (SELECT 1 FROM consent_records x\n        WHERE x.clinic_id = c.clinic_id AND x.supersedes_id = c.id\n          AND x.status = 'expired') AS expiry_recorded\n    FROM consent_records c\n    WHERE c.status IN ('granted', 'revoked')\n    ORDER BY c.clinic_id, c.patient_id, c.purpose, c.entry_no DESC\n  ) d\n$$"
SUMMARY_FUNCTION = "CREATE FUNCTION neonpro_consent_summary() RETURNS trigger\nLANGUAGE plpgsql AS $$\nDECLARE\n  v_status text;\n  v_version text;\nBEGIN\n  -- one summary writer per patient at a time: a concurrent append waits here until the\n  -- other commits, and the statements below (read committed: a snapshot each) see its row.\n  -- NO KEY UPDATE: the appends' foreign-key checks hold KEY SHARE, which it lets be\n  PERFORM 1 FROM patients WHERE clinic_id = NEW.clinic_id AND id = NEW.patient_id\n    FOR NO KEY UPDATE;\n  -- the states of the patient's purposes (neonpro_consent_state: the latest decision wins)\n  SELECT CASE\n      WHEN bool_or(s.state = 'given') THEN 'given'\n      WHEN bool_or(s.state = 'expired') THEN 'expired'\n      WHEN bool_or(s.state = 'withdrawn') THEN 'withdrawn'\n      ELSE 'pending' END,\n    (array_agg(s.terms_version ORDER BY s.entry_no DESC) FILTER (WHERE s.state = 'given'))[1]\n  INTO v_status, v_version\n  FROM neonpro_consent_state() s\n  WHERE s.clinic_id = NEW.clinic_id AND s.patient_id = NEW.patient_id;\n  UPDATE patients SET data_consent_status = coalesce(v_status, 'pending'),\n                      data_consent_version = v_version\n   WHERE clinic_id = NEW.clinic_id AND id = NEW.patient_id\n     AND (data_consent_status IS DISTINCT FROM coalesce(v_status, 'pending')\n          OR data_consent_version IS DISTINCT FROM v_version);\n  RETURN NULL;\nEND\n$$"
# the summary function of 0004, restored by downgrade
SUMMARY_FUNCTION_0004 = "CREATE FUNCTION neonpro_consent_summary() RETURNS trigger\nLANGUAGE plpgsql AS $$\nDECLARE\n  v_status text;\n  v_version text;\nBEGIN\n  WITH current_rows AS (\n    SELECT c.status, c.expires_at, c.terms_version, c.created_at\n    FROM consent_records c\n    WHERE c.clinic_id = NEW.clinic_id AND c.patient_id = NEW.patient_id\n      AND NOT EXISTS (SELECT 1 FROM consent_records n\n                      WHERE n.clinic_id = c.clinic_id AND n.supersedes_id = c.id)\n  )\n  SELECT CASE\n      WHEN bool_or(status = 'granted' AND (expires_at IS NULL OR expires_at > now()))\n        THEN 'given'\n      WHEN bool_or(status = 'expired' OR (status = 'granted' AND expires_at <= now()))\n        THEN 'expired'\n      WHEN bool_or(status = 'revoked') THEN 'withdrawn'\n      ELSE 'pending' END,\n    (SELECT terms_version FROM current_rows WHERE status = 'granted'\n       AND (expires_at IS NULL OR expires_at > now()) ORDER BY created_at DESC LIMIT 1)\n  INTO v_status, v_version FROM current_rows;\n  UPDATE patients SET data_consent_status = coalesce(v_status, 'pending'),\n                      data_consent_version = v_version\n   WHERE clinic_id = NEW.clinic_id AND id = NEW.patient_id\n     AND (data_consent_status IS DISTINCT FROM coalesce(v_status, 'pending')\n          OR data_consent_version IS DISTINCT FROM v_version);\n  RETURN NULL;\nEND\n$$"
ENTRY_NO_COMMENT = 'ledger order, assigned at insert by neonpro_consent_entry_no: the latest decision per patient and purpose wins'
BY_DECISION = 'ix_consent_records_clinic_id_patient_id_purpose_created_at'
ENTRY_INDEX = 'ix_consent_records_clinic_id_patient_id_purpose_entry_no'

RECOMPUTE = """
    UPDATE patients p SET data_consent_status = coalesce(s.status, 'pending'),
                          data_consent_version = s.version
    FROM patients q
    LEFT JOIN LATERAL (
      SELECT CASE WHEN bool_or(x.state = 'given') THEN 'given'
                  WHEN bool_or(x.state = 'expired') THEN 'expired'
                  WHEN bool_or(x.state = 'withdrawn') THEN 'withdrawn'
                  ELSE 'pending' END AS status,
             (array_agg(x.terms_version ORDER BY x.entry_no DESC)
                FILTER (WHERE x.state = 'given'))[1] AS version
      FROM neonpro_consent_state() x
      WHERE x.clinic_id = q.clinic_id AND x.patient_id = q.id) s ON true
    WHERE p.clinic_id = q.clinic_id AND p.id = q.id
      AND (p.data_consent_status IS DISTINCT FROM coalesce(s.status, 'pending')
           OR p.data_consent_version IS DISTINCT FROM s.version)"""


# 0004's rule (the rows no later row supersedes), recomputed on downgrade so that every
# summary agrees again with the gate of the revision below (which reads that rule)
RECOMPUTE_0004 = """
    UPDATE patients p SET data_consent_status = coalesce(s.status, 'pending'),
                          data_consent_version = s.version
    FROM patients q
    LEFT JOIN LATERAL (
      WITH current_rows AS (
        SELECT c.status, c.expires_at, c.terms_version, c.created_at
        FROM consent_records c
        WHERE c.clinic_id = q.clinic_id AND c.patient_id = q.id
          AND NOT EXISTS (SELECT 1 FROM consent_records n
                          WHERE n.clinic_id = c.clinic_id AND n.supersedes_id = c.id))
      SELECT CASE
          WHEN bool_or(status = 'granted' AND (expires_at IS NULL OR expires_at > now()))
            THEN 'given'
          WHEN bool_or(status = 'expired' OR (status = 'granted' AND expires_at <= now()))
            THEN 'expired'
          WHEN bool_or(status = 'revoked') THEN 'withdrawn'
          ELSE 'pending' END AS status,
        (SELECT terms_version FROM current_rows WHERE status = 'granted'
           AND (expires_at IS NULL OR expires_at > now())
           ORDER BY created_at DESC LIMIT 1) AS version
      FROM current_rows) s ON true
    WHERE p.clinic_id = q.clinic_id AND p.id = q.id
      AND (p.data_consent_status IS DISTINCT FROM coalesce(s.status, 'pending')
           OR p.data_consent_version IS DISTINCT FROM s.version)"""


def _recompute_all(statement: str) -> None:
    """Every patient's summary at once, as the owner: past row-level security, and without
    the patients' audit trigger (one transaction for all revisions binds no context)."""
    op.execute("ALTER TABLE patients NO FORCE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE patients DISABLE TRIGGER patients_audit")
    op.execute(statement)
    op.execute("ALTER TABLE patients ENABLE TRIGGER patients_audit")
    op.execute("ALTER TABLE patients FORCE ROW LEVEL SECURITY")


def _recompute_summaries(function: str) -> None:
    op.execute("DROP TRIGGER IF EXISTS consent_records_summary ON consent_records")
    op.execute(function.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
    op.execute("CREATE TRIGGER consent_records_summary AFTER INSERT ON consent_records "
               "FOR EACH ROW EXECUTE FUNCTION neonpro_consent_summary()")


def upgrade() -> None:
    op.execute(ENTRY_SEQUENCE)
    # number the rows so far in each purpose's order: cluster, then a rewrite that takes
    # the sequence in physical order (no row trigger fires; seqscans not synchronised)
    op.execute("SET LOCAL synchronize_seqscans = off")
    op.execute(f"CLUSTER consent_records USING {BY_DECISION}")
    op.execute("ALTER TABLE consent_records SET WITHOUT CLUSTER")
    op.execute("ALTER TABLE consent_records ADD COLUMN entry_no bigint NOT NULL "
               "DEFAULT nextval('consent_records_entry_no_seq')")
    op.execute("ALTER TABLE consent_records ALTER COLUMN entry_no DROP DEFAULT")
    op.execute("RESET synchronize_seqscans")
    op.execute(f"COMMENT ON COLUMN consent_records.entry_no IS '{ENTRY_NO_COMMENT}'")
    op.execute(f"CREATE INDEX {ENTRY_INDEX} ON consent_records "
               "(clinic_id, patient_id, purpose, entry_no)")
    op.execute(ENTRY_FUNCTION)
    op.execute(ENTRY_TRIGGER)
    op.execute(STATE_FUNCTION)
    _recompute_summaries(SUMMARY_FUNCTION)
    _recompute_all(RECOMPUTE)


def downgrade() -> None:
    _recompute_summaries(SUMMARY_FUNCTION_0004)
    _recompute_all(RECOMPUTE_0004)
    op.execute("DROP FUNCTION IF EXISTS neonpro_consent_state(timestamptz)")
    op.execute("DROP TRIGGER IF EXISTS consent_records_entry_no ON consent_records")
    op.execute("DROP FUNCTION IF EXISTS neonpro_consent_entry_no()")
    op.execute(f"DROP INDEX IF EXISTS {ENTRY_INDEX}")
    op.execute("ALTER TABLE consent_records DROP COLUMN entry_no")
    op.execute("DROP SEQUENCE IF EXISTS consent_records_entry_no_seq")
