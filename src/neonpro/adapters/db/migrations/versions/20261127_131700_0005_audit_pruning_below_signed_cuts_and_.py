"""audit pruning below signed cuts and database-stamped times

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 13:17:00.159807+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from neonpro.adapters.db.migrations import migration_roles

revision: str = '0005'
down_revision: str | Sequence[str] | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# frozen copies of audit_sql at this revision
BEFORE_INSERT = "CREATE OR REPLACE FUNCTION neonpro_audit_before_insert() RETURNS trigger\nLANGUAGE plpgsql AS $$\nBEGIN\n  IF NEW.seq IS NOT NULL OR NEW.hash IS NOT NULL OR NEW.prev_hash IS NOT NULL THEN\n    RAISE EXCEPTION 'audit events are inserted unsealed; the sealer assigns seq and hash'\n      USING ERRCODE = 'insufficient_privilege';\n  END IF;\n  -- the database stamps the time; only the owner (imports, restores) may set another\n  IF NEW.occurred_at IS NULL OR NOT pg_has_role(current_user,\n      (SELECT c.relowner FROM pg_class c WHERE c.oid = TG_RELID), 'MEMBER') THEN\n    NEW.occurred_at := now();\n  END IF;\n  NEW.retain_until := (NEW.occurred_at AT TIME ZONE 'UTC')::date\n    + neonpro_audit_retention(NEW.action, NEW.resource_type, NEW.risk_level);\n  RETURN NEW;\nEND\n$$"
PRUNE = "CREATE FUNCTION neonpro_audit_prune(p_clinic uuid, p_upto bigint, p_hash bytea,\n    p_archive_sha256 text, p_signature text) RETURNS bigint\nLANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$\nDECLARE\n  v_count bigint;\nBEGIN\n  PERFORM pg_advisory_xact_lock(hashtextextended('neonpro.audit.seal:' || p_clinic::text, 0));\n  IF NOT EXISTS (SELECT 1 FROM audit_events WHERE clinic_id = p_clinic AND seq = p_upto\n                 AND hash = p_hash) THEN\n    RAISE EXCEPTION 'the cut must be a sealed event of the chain' USING ERRCODE = 'data_exception';\n  END IF;\n  IF EXISTS (SELECT 1 FROM audit_events WHERE clinic_id = p_clinic AND seq <= p_upto\n             AND retain_until >= current_date) THEN\n    RAISE EXCEPTION 'events up to the cut are not all past their retention'\n      USING ERRCODE = 'data_exception';\n  END IF;\n  SELECT count(*) INTO v_count FROM audit_events WHERE clinic_id = p_clinic AND seq <= p_upto;\n  INSERT INTO audit_chain_cuts (clinic_id, seq, hash, pruned_events, archive_sha256, signature)\n    VALUES (p_clinic, p_upto, p_hash, v_count, p_archive_sha256, p_signature);\n  DELETE FROM audit_events WHERE clinic_id = p_clinic AND seq <= p_upto;\n  RETURN v_count;\nEND\n$$"
GRANTS = ('REVOKE ALL ON FUNCTION neonpro_audit_prune(uuid, bigint, bytea, text, text) FROM PUBLIC', 'GRANT EXECUTE ON FUNCTION neonpro_audit_prune(uuid, bigint, bytea, text, text) TO {service}')
OLD_BEFORE_INSERT = """CREATE OR REPLACE FUNCTION neonpro_audit_before_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.seq IS NOT NULL OR NEW.hash IS NOT NULL OR NEW.prev_hash IS NOT NULL THEN
    RAISE EXCEPTION 'audit events are inserted unsealed; the sealer assigns seq and hash'
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  NEW.occurred_at := coalesce(NEW.occurred_at, now());
  NEW.retain_until := (NEW.occurred_at AT TIME ZONE 'UTC')::date
    + neonpro_audit_retention(NEW.action, NEW.resource_type, NEW.risk_level);
  RETURN NEW;
END
$$"""


def upgrade() -> None:
    roles = migration_roles()
    op.execute(BEFORE_INSERT)
    op.execute(PRUNE)
    for statement in GRANTS:
        op.execute(statement.replace("{service}", roles.service))


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS neonpro_audit_prune(uuid, bigint, bytea, text, text)")
    op.execute(OLD_BEFORE_INSERT)
