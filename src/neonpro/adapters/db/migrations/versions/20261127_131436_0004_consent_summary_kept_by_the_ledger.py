"""consent summary kept by the ledger

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 13:14:36.210674+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0004'
down_revision: str | Sequence[str] | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# frozen copy of consent_sql at this revision
SUMMARY_FUNCTION = "CREATE FUNCTION neonpro_consent_summary() RETURNS trigger\nLANGUAGE plpgsql AS $$\nDECLARE\n  v_status text;\n  v_version text;\nBEGIN\n  WITH current_rows AS (\n    SELECT c.status, c.expires_at, c.terms_version, c.created_at\n    FROM consent_records c\n    WHERE c.clinic_id = NEW.clinic_id AND c.patient_id = NEW.patient_id\n      AND NOT EXISTS (SELECT 1 FROM consent_records n\n                      WHERE n.clinic_id = c.clinic_id AND n.supersedes_id = c.id)\n  )\n  SELECT CASE\n      WHEN bool_or(status = 'granted' AND (expires_at IS NULL OR expires_at > now()))\n        THEN 'given'\n      WHEN bool_or(status = 'expired' OR (status = 'granted' AND expires_at <= now()))\n        THEN 'expired'\n      WHEN bool_or(status = 'revoked') THEN 'withdrawn'\n      ELSE 'pending' END,\n    (SELECT terms_version FROM current_rows WHERE status = 'granted'\n       AND (expires_at IS NULL OR expires_at > now()) ORDER BY created_at DESC LIMIT 1)\n  INTO v_status, v_version FROM current_rows;\n  UPDATE patients SET data_consent_status = coalesce(v_status, 'pending'),\n                      data_consent_version = v_version\n   WHERE clinic_id = NEW.clinic_id AND id = NEW.patient_id\n     AND (data_consent_status IS DISTINCT FROM coalesce(v_status, 'pending')\n          OR data_consent_version IS DISTINCT FROM v_version);\n  RETURN NULL;\nEND\n$$"
SUMMARY_TRIGGER = 'CREATE TRIGGER consent_records_summary AFTER INSERT ON consent_records FOR EACH ROW EXECUTE FUNCTION neonpro_consent_summary()'


def upgrade() -> None:
    op.execute(SUMMARY_FUNCTION)
    op.execute(SUMMARY_TRIGGER)
    # bring every existing summary in line with the ledger
    op.execute("ALTER TABLE patients NO FORCE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE consent_records NO FORCE ROW LEVEL SECURITY")
    op.execute("SELECT set_config('app.actor_id', '00000000-0000-0000-0000-05e500000004', true)")
    op.execute("""
        UPDATE patients p SET data_consent_status = 'pending', data_consent_version = NULL
        WHERE (p.data_consent_status <> 'pending' OR p.data_consent_version IS NOT NULL)
          AND NOT EXISTS (SELECT 1 FROM consent_records c
                          WHERE c.clinic_id = p.clinic_id AND c.patient_id = p.id)""")
    op.execute("ALTER TABLE patients FORCE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE consent_records FORCE ROW LEVEL SECURITY")


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS consent_records_summary ON consent_records")
    op.execute("DROP FUNCTION IF EXISTS neonpro_consent_summary()")
