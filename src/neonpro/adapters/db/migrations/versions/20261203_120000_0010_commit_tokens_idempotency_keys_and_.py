"""commit tokens, idempotency keys, and the guard on erased patients

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-03 12:00:00+00:00

* ``commit_tokens``: a write transaction inserts a random token just before COMMIT; a lost
  acknowledgement is resolved by looking the token up (a transaction id can be reused by
  the server after a crash that discarded its commit record).
* ``idempotency_keys``: the Idempotency-Key of a POST, PATCH or DELETE per clinic, with the
  answer encrypted.
* ``neonpro_patient_erased_guard``: an anonymized, blocked or deleted patient's personal data
  can only be erased further, never given a value again, whoever runs the UPDATE.
* Erasure now advances the version of the rows it changes (no migration needed).

Self-contained: functions are CREATE OR REPLACE, the trigger is dropped first if it exists.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from neonpro.adapters.db.migrations import migration_roles

revision: str = '0010'
down_revision: str | Sequence[str] | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# frozen copies of security.py and erasure_sql.py at this revision; {app}, {service}... are
# role names
SECURITY_SQL: tuple[str, ...] = (
    'ALTER TABLE commit_tokens ENABLE ROW LEVEL SECURITY',
    'ALTER TABLE commit_tokens FORCE ROW LEVEL SECURITY',
    'REVOKE ALL ON commit_tokens FROM PUBLIC',
    "CREATE POLICY commit_tokens_tenant_insert ON commit_tokens AS PERMISSIVE FOR INSERT TO {app} WITH CHECK (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    'GRANT INSERT ON commit_tokens TO {app}',
    'GRANT SELECT, INSERT, DELETE ON commit_tokens TO {service}',
    'ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY',
    'ALTER TABLE idempotency_keys FORCE ROW LEVEL SECURITY',
    'REVOKE ALL ON idempotency_keys FROM PUBLIC',
    "CREATE POLICY idempotency_keys_tenant_select ON idempotency_keys AS PERMISSIVE FOR SELECT TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "CREATE POLICY idempotency_keys_tenant_insert ON idempotency_keys AS PERMISSIVE FOR INSERT TO {app} WITH CHECK (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "CREATE POLICY idempotency_keys_tenant_update ON idempotency_keys AS PERMISSIVE FOR UPDATE TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid) WITH CHECK (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "CREATE POLICY idempotency_keys_tenant_delete ON idempotency_keys AS PERMISSIVE FOR DELETE TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    'GRANT SELECT, INSERT, UPDATE, DELETE ON idempotency_keys TO {app}',
    'GRANT SELECT, INSERT, UPDATE, DELETE ON idempotency_keys TO {service}',
    "CREATE OR REPLACE FUNCTION neonpro_patient_erased_guard() RETURNS trigger\nLANGUAGE plpgsql AS $$\nDECLARE\n  v_column text;\nBEGIN\n  IF (OLD.anonymized_at IS NOT NULL AND NEW.anonymized_at IS NULL)\n     OR (OLD.deleted_at IS NOT NULL AND NEW.deleted_at IS NULL)\n     OR (OLD.blocked_at IS NOT NULL AND NEW.blocked_at IS NULL AND NEW.anonymized_at IS NULL) THEN\n    RAISE EXCEPTION 'patient % is erased: its erasure cannot be undone', OLD.id\n      USING ERRCODE = 'object_not_in_prerequisite_state', CONSTRAINT = 'patients_erased_guard';\n  END IF;\n  IF NOT coalesce(NEW.medical_record_number IS NOT DISTINCT FROM OLD.medical_record_number OR NEW.medical_record_number IS NULL OR NEW.medical_record_number ~ '^ANON-[0-9A-F]{12}$', false) THEN v_column := 'medical_record_number'; END IF;\n  IF NOT coalesce(NEW.given_names IS NOT DISTINCT FROM OLD.given_names OR NEW.given_names IS NULL OR NEW.given_names = '{}', false) THEN v_column := 'given_names'; END IF;\n  IF NOT coalesce(NEW.family_name IS NOT DISTINCT FROM OLD.family_name OR NEW.family_name IS NULL, false) THEN v_column := 'family_name'; END IF;\n  IF NOT coalesce(NEW.full_name IS NOT DISTINCT FROM OLD.full_name OR NEW.full_name IS NULL OR NEW.full_name = 'Paciente anonimizado', false) THEN v_column := 'full_name'; END IF;\n  IF NOT coalesce(NEW.preferred_name IS NOT DISTINCT FROM OLD.preferred_name OR NEW.preferred_name IS NULL, false) THEN v_column := 'preferred_name'; END IF;\n  IF NOT coalesce(NEW.birth_date IS NOT DISTINCT FROM OLD.birth_date OR NEW.birth_date IS NULL OR NEW.birth_date = date_trunc('year', OLD.birth_date)::date, false) THEN v_column := 'birth_date'; END IF;\n  IF NOT coalesce(NEW.gender IS NOT DISTINCT FROM OLD.gender OR NEW.gender IS NULL, false) THEN v_column := 'gender'; END IF;\n  IF NOT coalesce(NEW.marital_status IS NOT DISTINCT FROM OLD.marital_status OR NEW.marital_status IS NULL, false) THEN v_column := 'marital_status'; END IF;\n  IF NOT coalesce(NEW.nationality IS NOT DISTINCT FROM OLD.nationality OR NEW.nationality IS NULL OR NEW.nationality = 'brasileira', false) THEN v_column := 'nationality'; END IF;\n  IF NOT coalesce(NEW.deceased_date IS NOT DISTINCT FROM OLD.deceased_date OR NEW.deceased_date IS NULL OR NEW.deceased_date = date_trunc('year', OLD.deceased_date)::date, false) THEN v_column := 'deceased_date'; END IF;\n  IF NOT coalesce(NEW.photo_url IS NOT DISTINCT FROM OLD.photo_url OR NEW.photo_url IS NULL, false) THEN v_column := 'photo_url'; END IF;\n  IF NOT coalesce(NEW.cpf_encrypted IS NOT DISTINCT FROM OLD.cpf_encrypted OR NEW.cpf_encrypted IS NULL OR (OLD.cpf_encrypted IS NOT NULL AND NEW.cpf_encrypted IS NOT NULL), false) THEN v_column := 'cpf_encrypted'; END IF;\n  IF NOT coalesce(NEW.cpf_blind_index IS NOT DISTINCT FROM OLD.cpf_blind_index OR NEW.cpf_blind_index IS NULL OR (OLD.cpf_blind_index IS NOT NULL AND NEW.cpf_blind_index IS NOT NULL), false) THEN v_column := 'cpf_blind_index'; END IF;\n  IF NOT coalesce(NEW.cns_encrypted IS NOT DISTINCT FROM OLD.cns_encrypted OR NEW.cns_encrypted IS NULL OR (OLD.cns_encrypted IS NOT NULL AND NEW.cns_encrypted IS NOT NULL), false) THEN v_column := 'cns_encrypted'; END IF;\n  IF NOT coalesce(NEW.cns_blind_index IS NOT DISTINCT FROM OLD.cns_blind_index OR NEW.cns_blind_index IS NULL OR (OLD.cns_blind_index IS NOT NULL AND NEW.cns_blind_index IS NOT NULL), false) THEN v_column := 'cns_blind_index'; END IF;\n  IF NOT coalesce(NEW.rg_encrypted IS NOT DISTINCT FROM OLD.rg_encrypted OR NEW.rg_encrypted IS NULL OR (OLD.rg_encrypted IS NOT NULL AND NEW.rg_encrypted IS NOT NULL), false) THEN v_column := 'rg_encrypted'; END IF;\n  IF NOT coalesce(NEW.rg_issuing_organ IS NOT DISTINCT FROM OLD.rg_issuing_organ OR NEW.rg_issuing_organ IS NULL, false) THEN v_column := 'rg_issuing_organ'; END IF;\n  IF NOT coalesce(NEW.passport_number_encrypted IS NOT DISTINCT FROM OLD.passport_number_encrypted OR NEW.passport_number_encrypted IS NULL OR (OLD.passport_number_encrypted IS NOT NULL AND NEW.passport_number_encrypted IS NOT NULL), false) THEN v_column := 'passport_number_encrypted'; END IF;\n  IF NOT coalesce(NEW.external_ids IS NOT DISTINCT FROM OLD.external_ids OR NEW.external_ids IS NULL OR NEW.external_ids = '{}'::jsonb, false) THEN v_column := 'external_ids'; END IF;\n  IF NOT coalesce(NEW.phone_primary IS NOT DISTINCT FROM OLD.phone_primary OR NEW.phone_primary IS NULL, false) THEN v_column := 'phone_primary'; END IF;\n  IF NOT coalesce(NEW.phone_secondary IS NOT DISTINCT FROM OLD.phone_secondary OR NEW.phone_secondary IS NULL, false) THEN v_column := 'phone_secondary'; END IF;\n  IF NOT coalesce(NEW.email IS NOT DISTINCT FROM OLD.email OR NEW.email IS NULL, false) THEN v_column := 'email'; END IF;\n  IF NOT coalesce(NEW.address_line1 IS NOT DISTINCT FROM OLD.address_line1 OR NEW.address_line1 IS NULL, false) THEN v_column := 'address_line1'; END IF;\n  IF NOT coalesce(NEW.address_line2 IS NOT DISTINCT FROM OLD.address_line2 OR NEW.address_line2 IS NULL, false) THEN v_column := 'address_line2'; END IF;\n  IF NOT coalesce(NEW.city IS NOT DISTINCT FROM OLD.city OR NEW.city IS NULL, false) THEN v_column := 'city'; END IF;\n  IF NOT coalesce(NEW.state IS NOT DISTINCT FROM OLD.state OR NEW.state IS NULL, false) THEN v_column := 'state'; END IF;\n  IF NOT coalesce(NEW.postal_code IS NOT DISTINCT FROM OLD.postal_code OR NEW.postal_code IS NULL OR NEW.postal_code = left(OLD.postal_code, 5) || '000', false) THEN v_column := 'postal_code'; END IF;\n  IF NOT coalesce(NEW.country IS NOT DISTINCT FROM OLD.country OR NEW.country IS NULL OR NEW.country = 'BR', false) THEN v_column := 'country'; END IF;\n  IF NOT coalesce(NEW.blood_type IS NOT DISTINCT FROM OLD.blood_type OR NEW.blood_type IS NULL, false) THEN v_column := 'blood_type'; END IF;\n  IF NOT coalesce(NEW.allergies IS NOT DISTINCT FROM OLD.allergies OR NEW.allergies IS NULL OR NEW.allergies = '{}', false) THEN v_column := 'allergies'; END IF;\n  IF NOT coalesce(NEW.chronic_conditions IS NOT DISTINCT FROM OLD.chronic_conditions OR NEW.chronic_conditions IS NULL OR NEW.chronic_conditions = '{}', false) THEN v_column := 'chronic_conditions'; END IF;\n  IF NOT coalesce(NEW.current_medications IS NOT DISTINCT FROM OLD.current_medications OR NEW.current_medications IS NULL OR NEW.current_medications = '{}', false) THEN v_column := 'current_medications'; END IF;\n  IF NOT coalesce(NEW.accessibility_needs IS NOT DISTINCT FROM OLD.accessibility_needs OR NEW.accessibility_needs IS NULL OR NEW.accessibility_needs = '{}', false) THEN v_column := 'accessibility_needs'; END IF;\n  IF NOT coalesce(NEW.patient_notes_encrypted IS NOT DISTINCT FROM OLD.patient_notes_encrypted OR NEW.patient_notes_encrypted IS NULL OR (OLD.patient_notes_encrypted IS NOT NULL AND NEW.patient_notes_encrypted IS NOT NULL), false) THEN v_column := 'patient_notes_encrypted'; END IF;\n  IF NOT coalesce(NEW.internal_notes_encrypted IS NOT DISTINCT FROM OLD.internal_notes_encrypted OR NEW.internal_notes_encrypted IS NULL OR (OLD.internal_notes_encrypted IS NOT NULL AND NEW.internal_notes_encrypted IS NOT NULL), false) THEN v_column := 'internal_notes_encrypted'; END IF;\n  IF NOT coalesce(NEW.insurance_provider IS NOT DISTINCT FROM OLD.insurance_provider OR NEW.insurance_provider IS NULL, false) THEN v_column := 'insurance_provider'; END IF;\n  IF NOT coalesce(NEW.insurance_number IS NOT DISTINCT FROM OLD.insurance_number OR NEW.insurance_number IS NULL, false) THEN v_column := 'insurance_number'; END IF;\n  IF NOT coalesce(NEW.insurance_plan IS NOT DISTINCT FROM OLD.insurance_plan OR NEW.insurance_plan IS NULL, false) THEN v_column := 'insurance_plan'; END IF;\n  IF NOT coalesce(NEW.ans_operator_code IS NOT DISTINCT FROM OLD.ans_operator_code OR NEW.ans_operator_code IS NULL, false) THEN v_column := 'ans_operator_code'; END IF;\n  IF NOT coalesce(NEW.emergency_contact_name IS NOT DISTINCT FROM OLD.emergency_contact_name OR NEW.emergency_contact_name IS NULL, false) THEN v_column := 'emergency_contact_name'; END IF;\n  IF NOT coalesce(NEW.emergency_contact_phone IS NOT DISTINCT FROM OLD.emergency_contact_phone OR NEW.emergency_contact_phone IS NULL, false) THEN v_column := 'emergency_contact_phone'; END IF;\n  IF NOT coalesce(NEW.emergency_contact_relationship IS NOT DISTINCT FROM OLD.emergency_contact_relationship OR NEW.emergency_contact_relationship IS NULL, false) THEN v_column := 'emergency_contact_relationship'; END IF;\n  IF NOT coalesce(NEW.emergency_contact_cpf_encrypted IS NOT DISTINCT FROM OLD.emergency_contact_cpf_encrypted OR NEW.emergency_contact_cpf_encrypted IS NULL OR (OLD.emergency_contact_cpf_encrypted IS NOT NULL AND NEW.emergency_contact_cpf_encrypted IS NOT NULL), false) THEN v_column := 'emergency_contact_cpf_encrypted'; END IF;\n  IF v_column IS NOT NULL THEN\n    RAISE EXCEPTION 'patient % is erased: % cannot be given a value again', OLD.id, v_column\n      USING ERRCODE = 'object_not_in_prerequisite_state', CONSTRAINT = 'patients_erased_guard';\n  END IF;\n  RETURN NEW;\nEND\n$$",
    'CREATE TRIGGER patients_erased_guard BEFORE UPDATE ON patients FOR EACH ROW WHEN (OLD.anonymized_at IS NOT NULL OR OLD.blocked_at IS NOT NULL OR OLD.deleted_at IS NOT NULL) EXECUTE FUNCTION neonpro_patient_erased_guard()',
    'CREATE POLICY commit_tokens_owner ON commit_tokens AS PERMISSIVE FOR SELECT TO {owner} USING (true)',
    'CREATE OR REPLACE FUNCTION neonpro_commit_token_exists(p_clinic uuid, p_token uuid)\nRETURNS boolean LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$\n  SELECT EXISTS (SELECT 1 FROM commit_tokens WHERE clinic_id = p_clinic AND token = p_token)\n$$',
    'REVOKE ALL ON FUNCTION neonpro_commit_token_exists(uuid, uuid) FROM PUBLIC',
    'GRANT EXECUTE ON FUNCTION neonpro_commit_token_exists(uuid, uuid) TO {app}, {service}',
)

DOWNGRADE_SQL: tuple[str, ...] = (
    'DROP TRIGGER IF EXISTS patients_erased_guard ON patients',
    'DROP FUNCTION IF EXISTS neonpro_patient_erased_guard()',
    'DROP FUNCTION IF EXISTS neonpro_commit_token_exists(uuid, uuid)',
)


def _run(statements: tuple[str, ...]) -> None:
    roles = migration_roles()
    for statement in statements:
        op.execute(statement.replace("{owner}", roles.owner).replace("{app}", roles.app)
                   .replace("{service}", roles.service)
                   .replace("{legal_hold}", roles.legal_hold))


def upgrade() -> None:
    op.create_table(
        'commit_tokens',
        sa.Column('clinic_id', sa.UUID(), nullable=False, comment='tenant, or the nil UUID for cross-clinic work; no FK on purpose'),
        sa.Column('token', sa.UUID(), nullable=False, comment='random (uuid4), made by the client'),
        sa.Column('committed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.PrimaryKeyConstraint('clinic_id', 'token', name=op.f('pk_commit_tokens')),
        info={'scope': 'tenant'},
    )
    op.create_table(
        'idempotency_keys',
        sa.Column('clinic_id', sa.UUID(), nullable=False),
        sa.Column('key_hash', postgresql.BYTEA(), nullable=False, comment="SHA-256 of the client's key"),
        sa.Column('request_hash', postgresql.BYTEA(), nullable=False, comment='SHA-256 of method, path, query, body and the caller'),
        sa.Column('actor_id', sa.UUID(), nullable=True, comment='actor: staff user id or named system actor; no FK on purpose'),
        sa.Column('claim', sa.UUID(), nullable=False, comment='the attempt that holds the key now'),
        sa.Column('state', sa.Text(), nullable=False, comment="in_flight; committed (by the work's own transaction); done (answered)"),
        sa.Column('server_started', sa.DateTime(timezone=True), nullable=False, comment='pg_postmaster_start_time() at the claim: a restart ends every attempt'),
        sa.Column('lease_until', sa.DateTime(timezone=True), nullable=False, comment='an in-flight claim older than this is abandoned and may be taken over'),
        sa.Column('request_id', sa.Text(), nullable=True, comment='request id of the attempt whose work committed (its audit events)'),
        sa.Column('status_code', sa.Integer(), nullable=True),
        sa.Column('content_type', sa.Text(), nullable=True),
        sa.Column('body_encrypted', postgresql.BYTEA(), nullable=True, comment='the answer, AES-256-GCM with the field keys (may hold personal data); NULL once scrubbed'),
        sa.Column('patient_ids', postgresql.ARRAY(sa.UUID()), server_default=sa.text("'{}'"), nullable=False, comment='patients the answer names: their erasure scrubs it'),
        sa.Column('scrubbed_at', sa.DateTime(timezone=True), nullable=True, comment='the answer was removed by an erasure'),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False, comment='kept at least 24 hours'),
        sa.CheckConstraint("state IN ('in_flight', 'committed', 'done')", name=op.f('ck_idempotency_keys_state')),
        sa.ForeignKeyConstraint(['clinic_id'], ['clinics.id'], name=op.f('fk_idempotency_keys_clinic_id_clinics'), ondelete='RESTRICT'),
        sa.PrimaryKeyConstraint('clinic_id', 'key_hash', name=op.f('pk_idempotency_keys')),
        info={'scope': 'tenant'},
    )
    op.create_index(op.f('ix_idempotency_keys_expires_at'), 'idempotency_keys', ['expires_at'], unique=False)
    op.execute('DROP TRIGGER IF EXISTS patients_erased_guard ON patients')
    _run(SECURITY_SQL)


def downgrade() -> None:
    _run(DOWNGRADE_SQL)
    op.drop_index(op.f('ix_idempotency_keys_expires_at'), table_name='idempotency_keys')
    op.drop_table('idempotency_keys')
    op.drop_table('commit_tokens')
