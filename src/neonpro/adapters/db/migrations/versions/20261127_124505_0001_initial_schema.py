"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-27 12:45:05.948876+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from neonpro.adapters.db.migrations import migration_roles

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Row-level security, grants, guard triggers: a frozen copy of security.expected_ddl
# at this revision ({owner}, {app}, {service} are the configured role names).
SECURITY_SQL: tuple[str, ...] = (
    "CREATE FUNCTION neonpro_touch_updated_at() RETURNS trigger\nLANGUAGE plpgsql AS $$\nBEGIN\n  NEW.updated_at := now();\n  RETURN NEW;\nEND\n$$",
    "CREATE FUNCTION neonpro_refuse_change() RETURNS trigger\nLANGUAGE plpgsql AS $$\nBEGIN\n  RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP\n    USING ERRCODE = 'insufficient_privilege';\nEND\n$$",
    "ALTER TABLE audit_events ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE audit_events FORCE ROW LEVEL SECURITY",
    "REVOKE ALL ON audit_events FROM PUBLIC",
    "CREATE POLICY audit_events_tenant_select ON audit_events AS PERMISSIVE FOR SELECT TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "CREATE POLICY audit_events_tenant_insert ON audit_events AS PERMISSIVE FOR INSERT TO {app} WITH CHECK (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "GRANT SELECT, INSERT ON audit_events TO {app}",
    "GRANT SELECT, INSERT ON audit_events TO {service}",
    "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events FOR EACH ROW EXECUTE FUNCTION neonpro_refuse_change()",
    "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events FOR EACH STATEMENT EXECUTE FUNCTION neonpro_refuse_change()",
    "ALTER TABLE clinics ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE clinics FORCE ROW LEVEL SECURITY",
    "REVOKE ALL ON clinics FROM PUBLIC",
    "CREATE POLICY clinics_tenant_select ON clinics AS PERMISSIVE FOR SELECT TO {app} USING (id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "CREATE POLICY clinics_tenant_update ON clinics AS PERMISSIVE FOR UPDATE TO {app} USING (id = NULLIF(current_setting('app.clinic_id', true), '')::uuid) WITH CHECK (id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "GRANT SELECT, UPDATE ON clinics TO {app}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON clinics TO {service}",
    "CREATE TRIGGER clinics_touch_updated_at BEFORE UPDATE ON clinics FOR EACH ROW EXECUTE FUNCTION neonpro_touch_updated_at()",
    "ALTER TABLE staff_users ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE staff_users FORCE ROW LEVEL SECURITY",
    "REVOKE ALL ON staff_users FROM PUBLIC",
    "CREATE POLICY staff_users_member_select ON staff_users AS PERMISSIVE FOR SELECT TO {app} USING (id = NULLIF(current_setting('app.actor_id', true), '')::uuid OR EXISTS (SELECT 1 FROM clinic_memberships m WHERE m.user_id = staff_users.id AND m.clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid))",
    "GRANT SELECT (id, email, display_name, is_active, failed_login_count, locked_until, last_login_at, created_at, updated_at) ON staff_users TO {app}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON staff_users TO {service}",
    "CREATE TRIGGER staff_users_touch_updated_at BEFORE UPDATE ON staff_users FOR EACH ROW EXECUTE FUNCTION neonpro_touch_updated_at()",
    "ALTER TABLE clinic_memberships ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE clinic_memberships FORCE ROW LEVEL SECURITY",
    "REVOKE ALL ON clinic_memberships FROM PUBLIC",
    "CREATE POLICY clinic_memberships_tenant_select ON clinic_memberships AS PERMISSIVE FOR SELECT TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "CREATE POLICY clinic_memberships_tenant_insert ON clinic_memberships AS PERMISSIVE FOR INSERT TO {app} WITH CHECK (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "CREATE POLICY clinic_memberships_tenant_update ON clinic_memberships AS PERMISSIVE FOR UPDATE TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid) WITH CHECK (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "CREATE POLICY clinic_memberships_tenant_delete ON clinic_memberships AS PERMISSIVE FOR DELETE TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON clinic_memberships TO {app}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON clinic_memberships TO {service}",
    "ALTER TABLE professionals ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE professionals FORCE ROW LEVEL SECURITY",
    "REVOKE ALL ON professionals FROM PUBLIC",
    "CREATE POLICY professionals_tenant_select ON professionals AS PERMISSIVE FOR SELECT TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "CREATE POLICY professionals_tenant_insert ON professionals AS PERMISSIVE FOR INSERT TO {app} WITH CHECK (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "CREATE POLICY professionals_tenant_update ON professionals AS PERMISSIVE FOR UPDATE TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid) WITH CHECK (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "CREATE POLICY professionals_tenant_delete ON professionals AS PERMISSIVE FOR DELETE TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON professionals TO {app}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON professionals TO {service}",
    "CREATE TRIGGER professionals_touch_updated_at BEFORE UPDATE ON professionals FOR EACH ROW EXECUTE FUNCTION neonpro_touch_updated_at()",
    "ALTER TABLE retention_policies ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE retention_policies FORCE ROW LEVEL SECURITY",
    "REVOKE ALL ON retention_policies FROM PUBLIC",
    "CREATE POLICY retention_policies_tenant_select ON retention_policies AS PERMISSIVE FOR SELECT TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "CREATE POLICY retention_policies_tenant_insert ON retention_policies AS PERMISSIVE FOR INSERT TO {app} WITH CHECK (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "CREATE POLICY retention_policies_tenant_update ON retention_policies AS PERMISSIVE FOR UPDATE TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid) WITH CHECK (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "CREATE POLICY retention_policies_tenant_delete ON retention_policies AS PERMISSIVE FOR DELETE TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON retention_policies TO {app}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON retention_policies TO {service}",
    "CREATE TRIGGER retention_policies_touch_updated_at BEFORE UPDATE ON retention_policies FOR EACH ROW EXECUTE FUNCTION neonpro_touch_updated_at()",
    "ALTER TABLE security_incidents ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE security_incidents FORCE ROW LEVEL SECURITY",
    "REVOKE ALL ON security_incidents FROM PUBLIC",
    "CREATE POLICY security_incidents_tenant_select ON security_incidents AS PERMISSIVE FOR SELECT TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "CREATE POLICY security_incidents_tenant_insert ON security_incidents AS PERMISSIVE FOR INSERT TO {app} WITH CHECK (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "CREATE POLICY security_incidents_tenant_update ON security_incidents AS PERMISSIVE FOR UPDATE TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid) WITH CHECK (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "CREATE POLICY security_incidents_tenant_delete ON security_incidents AS PERMISSIVE FOR DELETE TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON security_incidents TO {app}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON security_incidents TO {service}",
    "CREATE TRIGGER security_incidents_touch_updated_at BEFORE UPDATE ON security_incidents FOR EACH ROW EXECUTE FUNCTION neonpro_touch_updated_at()",
    "ALTER TABLE service_types ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE service_types FORCE ROW LEVEL SECURITY",
    "REVOKE ALL ON service_types FROM PUBLIC",
    "CREATE POLICY service_types_tenant_select ON service_types AS PERMISSIVE FOR SELECT TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "CREATE POLICY service_types_tenant_insert ON service_types AS PERMISSIVE FOR INSERT TO {app} WITH CHECK (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "CREATE POLICY service_types_tenant_update ON service_types AS PERMISSIVE FOR UPDATE TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid) WITH CHECK (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "CREATE POLICY service_types_tenant_delete ON service_types AS PERMISSIVE FOR DELETE TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON service_types TO {app}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON service_types TO {service}",
    "CREATE TRIGGER service_types_touch_updated_at BEFORE UPDATE ON service_types FOR EACH ROW EXECUTE FUNCTION neonpro_touch_updated_at()",
    "ALTER TABLE patients ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE patients FORCE ROW LEVEL SECURITY",
    "REVOKE ALL ON patients FROM PUBLIC",
    "CREATE POLICY patients_tenant_select ON patients AS PERMISSIVE FOR SELECT TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "CREATE POLICY patients_tenant_insert ON patients AS PERMISSIVE FOR INSERT TO {app} WITH CHECK (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "CREATE POLICY patients_tenant_update ON patients AS PERMISSIVE FOR UPDATE TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid) WITH CHECK (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "CREATE POLICY patients_tenant_delete ON patients AS PERMISSIVE FOR DELETE TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON patients TO {app}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON patients TO {service}",
    "CREATE TRIGGER patients_touch_updated_at BEFORE UPDATE ON patients FOR EACH ROW EXECUTE FUNCTION neonpro_touch_updated_at()",
    "ALTER TABLE appointments ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE appointments FORCE ROW LEVEL SECURITY",
    "REVOKE ALL ON appointments FROM PUBLIC",
    "CREATE POLICY appointments_tenant_select ON appointments AS PERMISSIVE FOR SELECT TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "CREATE POLICY appointments_tenant_insert ON appointments AS PERMISSIVE FOR INSERT TO {app} WITH CHECK (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "CREATE POLICY appointments_tenant_update ON appointments AS PERMISSIVE FOR UPDATE TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid) WITH CHECK (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "CREATE POLICY appointments_tenant_delete ON appointments AS PERMISSIVE FOR DELETE TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON appointments TO {app}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON appointments TO {service}",
    "CREATE TRIGGER appointments_touch_updated_at BEFORE UPDATE ON appointments FOR EACH ROW EXECUTE FUNCTION neonpro_touch_updated_at()",
    "ALTER TABLE consent_records ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE consent_records FORCE ROW LEVEL SECURITY",
    "REVOKE ALL ON consent_records FROM PUBLIC",
    "CREATE POLICY consent_records_tenant_select ON consent_records AS PERMISSIVE FOR SELECT TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "CREATE POLICY consent_records_tenant_insert ON consent_records AS PERMISSIVE FOR INSERT TO {app} WITH CHECK (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "CREATE POLICY consent_records_tenant_update ON consent_records AS PERMISSIVE FOR UPDATE TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid) WITH CHECK (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "CREATE POLICY consent_records_tenant_delete ON consent_records AS PERMISSIVE FOR DELETE TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON consent_records TO {app}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON consent_records TO {service}",
    "ALTER TABLE data_subject_requests ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE data_subject_requests FORCE ROW LEVEL SECURITY",
    "REVOKE ALL ON data_subject_requests FROM PUBLIC",
    "CREATE POLICY data_subject_requests_tenant_select ON data_subject_requests AS PERMISSIVE FOR SELECT TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "CREATE POLICY data_subject_requests_tenant_insert ON data_subject_requests AS PERMISSIVE FOR INSERT TO {app} WITH CHECK (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "CREATE POLICY data_subject_requests_tenant_update ON data_subject_requests AS PERMISSIVE FOR UPDATE TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid) WITH CHECK (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "CREATE POLICY data_subject_requests_tenant_delete ON data_subject_requests AS PERMISSIVE FOR DELETE TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON data_subject_requests TO {app}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON data_subject_requests TO {service}",
    "CREATE TRIGGER data_subject_requests_touch_updated_at BEFORE UPDATE ON data_subject_requests FOR EACH ROW EXECUTE FUNCTION neonpro_touch_updated_at()",
    "ALTER TABLE disclosures ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE disclosures FORCE ROW LEVEL SECURITY",
    "REVOKE ALL ON disclosures FROM PUBLIC",
    "CREATE POLICY disclosures_tenant_select ON disclosures AS PERMISSIVE FOR SELECT TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "CREATE POLICY disclosures_tenant_insert ON disclosures AS PERMISSIVE FOR INSERT TO {app} WITH CHECK (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "CREATE POLICY disclosures_tenant_update ON disclosures AS PERMISSIVE FOR UPDATE TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid) WITH CHECK (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "CREATE POLICY disclosures_tenant_delete ON disclosures AS PERMISSIVE FOR DELETE TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON disclosures TO {app}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON disclosures TO {service}",
)


def upgrade() -> None:
    # ### commands auto generated by Alembic - please adjust! ###
    op.create_table("audit_events",
    sa.Column("clinic_id", sa.UUID(), nullable=False, comment="tenant, or the nil UUID for the system chain; no FK on purpose"),
    sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
    sa.Column("seq", sa.BigInteger(), nullable=False),
    sa.Column("occurred_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    sa.Column("actor_id", sa.UUID(), nullable=True, comment="actor: staff user id or named system actor; no FK on purpose"),
    sa.Column("actor_role", sa.Text(), nullable=True),
    sa.Column("action", sa.Text(), nullable=False),
    sa.Column("resource_type", sa.Text(), nullable=True),
    sa.Column("resource_id", sa.Text(), nullable=True),
    sa.Column("patient_ref", sa.LargeBinary(), nullable=True, comment="keyed hash of the patient id (never the raw id or CPF)"),
    sa.Column("status", sa.Text(), server_default=sa.text("'success'"), nullable=False),
    sa.Column("risk_level", sa.Text(), server_default=sa.text("'low'"), nullable=False),
    sa.Column("ip_address", postgresql.INET(), nullable=True, comment="LGPD audit; anonymize: keep; kept for the audit retention period"),
    sa.Column("user_agent", sa.Text(), nullable=True, comment="LGPD audit; anonymize: keep; kept for the audit retention period"),
    sa.Column("session_id", sa.Text(), nullable=True),
    sa.Column("request_id", sa.Text(), nullable=True),
    sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column("prev_hash", sa.LargeBinary(), nullable=True),
    sa.Column("hash", sa.LargeBinary(), nullable=True),
    sa.CheckConstraint("action IN ('VIEW', 'CREATE', 'UPDATE', 'DELETE', 'EXPORT', 'LOGIN', 'LOGOUT', 'LOGIN_FAILED', 'CONSENT_GRANTED', 'CONSENT_REVOKED', 'CONSENT_EXPIRED', 'ANONYMIZE', 'BLOCK', 'UNBLOCK', 'BACKUP', 'RESTORE', 'VERIFY', 'LEGAL_HOLD_READ', 'PERMISSION_DENIED', 'TELEMEDICINE_START', 'TELEMEDICINE_END', 'TELEMEDICINE_JOIN', 'TELEMEDICINE_LEAVE', 'RECORDING_CONSENT', 'RETENTION', 'KEY_ROTATION', 'INCIDENT')", name=op.f("ck_audit_events_action_valid")),
    sa.CheckConstraint("risk_level IN ('low', 'medium', 'high', 'critical')", name=op.f("ck_audit_events_risk_level_valid")),
    sa.CheckConstraint("status IN ('success', 'failure', 'blocked')", name=op.f("ck_audit_events_status_valid")),
    sa.CheckConstraint("seq >= 1", name=op.f("ck_audit_events_seq_positive")),
    sa.PrimaryKeyConstraint("clinic_id", "id", name=op.f("pk_audit_events")),
    sa.UniqueConstraint("clinic_id", "seq", name=op.f("uq_audit_events_clinic_id_seq")),
    info={"scope": "tenant"}
    )
    op.create_index(op.f("ix_audit_events_clinic_id_action_occurred_at"), "audit_events", ["clinic_id", "action", "occurred_at"], unique=False)
    op.create_index(op.f("ix_audit_events_clinic_id_actor_id_occurred_at"), "audit_events", ["clinic_id", "actor_id", "occurred_at"], unique=False)
    op.create_index(op.f("ix_audit_events_clinic_id_occurred_at"), "audit_events", ["clinic_id", "occurred_at"], unique=False)
    op.create_index(op.f("ix_audit_events_clinic_id_patient_ref_occurred_at"), "audit_events", ["clinic_id", "patient_ref", "occurred_at"], unique=False)
    op.create_index(op.f("ix_audit_events_clinic_id_resource_type_resource_id"), "audit_events", ["clinic_id", "resource_type", "resource_id"], unique=False)
    op.create_table("clinics",
    sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
    sa.Column("name", sa.Text(), nullable=False),
    sa.Column("legal_name", sa.Text(), nullable=True),
    sa.Column("cnpj", sa.Text(), nullable=True),
    sa.Column("cnes_code", sa.Text(), nullable=True),
    sa.Column("timezone", sa.Text(), server_default=sa.text("'America/Sao_Paulo'"), nullable=False),
    sa.Column("dpo_name", sa.Text(), nullable=True, comment="LGPD identification; anonymize: keep; public by Art. 41 §1"),
    sa.Column("dpo_email", sa.Text(), nullable=True, comment="LGPD contact; anonymize: keep; public by Art. 41 §1"),
    sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    sa.CheckConstraint("cnes_code ~ '^[0-9]{7}$'", name=op.f("ck_clinics_cnes_code_format")),
    sa.CheckConstraint("cnpj ~ '^[0-9]{14}$'", name=op.f("ck_clinics_cnpj_format")),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_clinics")),
    sa.UniqueConstraint("cnpj", name=op.f("uq_clinics_cnpj")),
    info={"scope": "clinic"}
    )
    op.create_table("staff_users",
    sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
    sa.Column("email", sa.Text(), nullable=False, comment="LGPD contact; anonymize: replace"),
    sa.Column("display_name", sa.Text(), nullable=False, comment="LGPD identification; anonymize: replace"),
    sa.Column("password_hash", sa.Text(), nullable=False, comment="argon2 hash; erase on anonymize"),
    sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
    sa.Column("failed_login_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
    sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    sa.CheckConstraint("failed_login_count >= 0", name=op.f("ck_staff_users_failed_login_count_non_negative")),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_users")),
    info={"scope": "global"}
    )
    op.create_index("uq_staff_users_lower_email", "staff_users", [sa.literal_column("lower(email)")], unique=True)
    op.create_table("clinic_memberships",
    sa.Column("clinic_id", sa.UUID(), nullable=False),
    sa.Column("user_id", sa.UUID(), nullable=False),
    sa.Column("role", sa.Text(), nullable=False),
    sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    sa.CheckConstraint("role IN ('admin', 'professional', 'receptionist', 'dpo')", name=op.f("ck_clinic_memberships_role_valid")),
    sa.ForeignKeyConstraint(["clinic_id"], ["clinics.id"], name=op.f("fk_clinic_memberships_clinic_id_clinics"), ondelete="RESTRICT"),
    sa.ForeignKeyConstraint(["user_id"], ["staff_users.id"], name=op.f("fk_clinic_memberships_user_id_staff_users"), ondelete="CASCADE"),
    sa.PrimaryKeyConstraint("clinic_id", "user_id", name=op.f("pk_clinic_memberships")),
    info={"scope": "tenant"}
    )
    op.create_table("professionals",
    sa.Column("clinic_id", sa.UUID(), nullable=False),
    sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
    sa.Column("user_id", sa.UUID(), nullable=True),
    sa.Column("full_name", sa.Text(), nullable=False, comment="LGPD identification; anonymize: replace"),
    sa.Column("specialization", sa.Text(), nullable=True),
    sa.Column("council_type", sa.Text(), nullable=True),
    sa.Column("council_license", sa.Text(), nullable=True, comment="LGPD identification; anonymize: erase; public register number"),
    sa.Column("council_state", sa.Text(), nullable=True),
    sa.Column("council_validation", sa.Text(), server_default=sa.text("'pending'"), nullable=False),
    sa.Column("license_expiry_date", sa.Date(), nullable=True),
    sa.Column("phone", sa.Text(), nullable=True, comment="LGPD contact; anonymize: erase"),
    sa.Column("email", sa.Text(), nullable=True, comment="LGPD contact; anonymize: erase"),
    sa.Column("color", sa.Text(), server_default=sa.text("'#3B82F6'"), nullable=False),
    sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
    sa.Column("work_start_time", sa.Time(), nullable=True),
    sa.Column("work_end_time", sa.Time(), nullable=True),
    sa.Column("break_start_time", sa.Time(), nullable=True),
    sa.Column("break_end_time", sa.Time(), nullable=True),
    sa.Column("can_work_weekends", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    sa.Column("max_daily_appointments", sa.Integer(), server_default=sa.text("20"), nullable=False),
    sa.Column("appointment_buffer_minutes", sa.Integer(), server_default=sa.text("15"), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    sa.CheckConstraint("color ~ '^#[0-9A-Fa-f]{6}$'", name=op.f("ck_professionals_color_format")),
    sa.CheckConstraint("council_state IN ('AC', 'AL', 'AP', 'AM', 'BA', 'CE', 'DF', 'ES', 'GO', 'MA', 'MT', 'MS', 'MG', 'PA', 'PB', 'PR', 'PE', 'PI', 'RJ', 'RN', 'RS', 'RO', 'RR', 'SC', 'SP', 'SE', 'TO')", name=op.f("ck_professionals_council_state_uf")),
    sa.CheckConstraint("council_type IN ('CRM', 'CRO', 'COREN', 'CRF', 'CREFITO', 'CRP', 'CRN', 'CRBM', 'CRFa', 'CREF', 'CRESS', 'CRTR', 'OTHER')", name=op.f("ck_professionals_council_type_valid")),
    sa.CheckConstraint("council_validation IN ('pending', 'validated', 'rejected')", name=op.f("ck_professionals_council_validation_valid")),
    sa.CheckConstraint("phone ~ '^[1-9][1-9][0-9]{8,9}$'", name=op.f("ck_professionals_phone_format")),
    sa.CheckConstraint("(break_start_time IS NULL) = (break_end_time IS NULL)", name=op.f("ck_professionals_break_pair")),
    sa.CheckConstraint("(work_start_time IS NULL) = (work_end_time IS NULL)", name=op.f("ck_professionals_work_hours_pair")),
    sa.CheckConstraint("appointment_buffer_minutes >= 0", name=op.f("ck_professionals_appointment_buffer_minutes_non_negative")),
    sa.CheckConstraint("break_start_time IS NULL OR (work_start_time IS NOT NULL AND break_start_time >= work_start_time AND break_end_time > break_start_time AND break_end_time <= work_end_time)", name=op.f("ck_professionals_break_within_work_hours")),
    sa.CheckConstraint("council_license IS NULL OR council_type IS NOT NULL", name=op.f("ck_professionals_council_license_needs_type")),
    sa.CheckConstraint("max_daily_appointments > 0", name=op.f("ck_professionals_max_daily_appointments_positive")),
    sa.CheckConstraint("work_end_time > work_start_time", name=op.f("ck_professionals_work_hours_order")),
    sa.ForeignKeyConstraint(["clinic_id"], ["clinics.id"], name=op.f("fk_professionals_clinic_id_clinics"), ondelete="RESTRICT"),
    sa.ForeignKeyConstraint(["user_id"], ["staff_users.id"], name=op.f("fk_professionals_user_id_staff_users"), ondelete="SET NULL"),
    sa.PrimaryKeyConstraint("clinic_id", "id", name=op.f("pk_professionals")),
    sa.UniqueConstraint("clinic_id", "council_type", "council_state", "council_license", name="uq_professionals_clinic_id_council_registration"),
    sa.UniqueConstraint("clinic_id", "user_id", name=op.f("uq_professionals_clinic_id_user_id")),
    info={"scope": "tenant"}
    )
    op.create_index(op.f("ix_professionals_clinic_id_is_active"), "professionals", ["clinic_id", "is_active"], unique=False)
    op.create_table("retention_policies",
    sa.Column("clinic_id", sa.UUID(), nullable=False),
    sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
    sa.Column("data_category", sa.Text(), nullable=False),
    sa.Column("trigger", sa.Text(), nullable=False),
    sa.Column("period", sa.Interval(), nullable=False),
    sa.Column("action", sa.Text(), nullable=False),
    sa.Column("legal_reference", sa.Text(), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    sa.CheckConstraint("action IN ('anonymize', 'block', 'delete', 'keep')", name=op.f("ck_retention_policies_action_valid")),
    sa.CheckConstraint("data_category <> 'clinical' OR action = 'keep' OR period >= interval '20 years'", name=op.f("ck_retention_policies_clinical_legal_hold")),
    sa.CheckConstraint("data_category IN ('identification', 'contact', 'address', 'clinical', 'insurance', 'emergency_contact', 'consent', 'financial', 'marketing', 'images', 'audit')", name=op.f("ck_retention_policies_data_category_valid")),
    sa.CheckConstraint("period >= interval '0'", name=op.f("ck_retention_policies_period_non_negative")),
    sa.CheckConstraint("trigger IN ('last_clinical_entry', 'consent_revoked', 'inactivity', 'request_fulfilled', 'incident_closed')", name=op.f("ck_retention_policies_trigger_valid")),
    sa.ForeignKeyConstraint(["clinic_id"], ["clinics.id"], name=op.f("fk_retention_policies_clinic_id_clinics"), ondelete="RESTRICT"),
    sa.PrimaryKeyConstraint("clinic_id", "id", name=op.f("pk_retention_policies")),
    sa.UniqueConstraint("clinic_id", "data_category", "trigger", name=op.f("uq_retention_policies_clinic_id_data_category_trigger")),
    info={"scope": "tenant"}
    )
    op.create_table("security_incidents",
    sa.Column("clinic_id", sa.UUID(), nullable=False),
    sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
    sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("learned_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("description", sa.Text(), nullable=False, comment="no personal data: describe categories and counts"),
    sa.Column("affected_data_categories", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
    sa.Column("affected_patient_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
    sa.Column("risk_assessment", sa.Text(), nullable=True),
    sa.Column("risk_level", sa.Text(), server_default=sa.text("'high'"), nullable=False),
    sa.Column("notified_anpd_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("notified_subjects_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("notification_due_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("mitigation", sa.Text(), nullable=True),
    sa.Column("status", sa.Text(), server_default=sa.text("'open'"), nullable=False),
    sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("retain_until", sa.Date(), nullable=True),
    sa.Column("reported_by", sa.UUID(), nullable=True, comment="actor: staff user id or named system actor; no FK on purpose"),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    sa.CheckConstraint("affected_data_categories <@ ARRAY['identification', 'contact', 'address', 'clinical', 'insurance', 'emergency_contact', 'consent', 'financial', 'marketing', 'images', 'audit']::text[]", name=op.f("ck_security_incidents_affected_data_categories_valid")),
    sa.CheckConstraint("risk_level IN ('low', 'medium', 'high', 'critical')", name=op.f("ck_security_incidents_risk_level_valid")),
    sa.CheckConstraint("status <> 'closed' OR closed_at IS NOT NULL", name=op.f("ck_security_incidents_closed_needs_closed_at")),
    sa.CheckConstraint("status IN ('open', 'contained', 'closed')", name=op.f("ck_security_incidents_status_valid")),
    sa.CheckConstraint("affected_patient_count >= 0", name=op.f("ck_security_incidents_affected_patient_count_non_negative")),
    sa.CheckConstraint("closed_at >= detected_at", name=op.f("ck_security_incidents_closed_after_detected")),
    sa.ForeignKeyConstraint(["clinic_id"], ["clinics.id"], name=op.f("fk_security_incidents_clinic_id_clinics"), ondelete="RESTRICT"),
    sa.PrimaryKeyConstraint("clinic_id", "id", name=op.f("pk_security_incidents")),
    info={"scope": "tenant"}
    )
    op.create_index(op.f("ix_security_incidents_clinic_id_notification_due_at"), "security_incidents", ["clinic_id", "notification_due_at"], unique=False)
    op.create_index(op.f("ix_security_incidents_clinic_id_status_detected_at"), "security_incidents", ["clinic_id", "status", "detected_at"], unique=False)
    op.create_table("service_types",
    sa.Column("clinic_id", sa.UUID(), nullable=False),
    sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
    sa.Column("name", sa.Text(), nullable=False),
    sa.Column("description", sa.Text(), nullable=True),
    sa.Column("duration_minutes", sa.Integer(), nullable=False),
    sa.Column("price", sa.Numeric(precision=10, scale=2), server_default=sa.text("0"), nullable=False),
    sa.Column("category", sa.Text(), nullable=True),
    sa.Column("tuss_code", sa.Text(), nullable=True),
    sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    sa.CheckConstraint("tuss_code ~ '^[0-9]{8}$'", name=op.f("ck_service_types_tuss_code_format")),
    sa.CheckConstraint("duration_minutes > 0", name=op.f("ck_service_types_duration_minutes_positive")),
    sa.CheckConstraint("price >= 0", name=op.f("ck_service_types_price_non_negative")),
    sa.ForeignKeyConstraint(["clinic_id"], ["clinics.id"], name=op.f("fk_service_types_clinic_id_clinics"), ondelete="RESTRICT"),
    sa.PrimaryKeyConstraint("clinic_id", "id", name=op.f("pk_service_types")),
    info={"scope": "tenant"}
    )
    op.create_index(op.f("ix_service_types_clinic_id_is_active"), "service_types", ["clinic_id", "is_active"], unique=False)
    op.create_table("patients",
    sa.Column("clinic_id", sa.UUID(), nullable=False),
    sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
    sa.Column("medical_record_number", sa.Text(), nullable=False, comment="LGPD identification; anonymize: replace"),
    sa.Column("given_names", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False, comment="LGPD identification; anonymize: erase"),
    sa.Column("family_name", sa.Text(), nullable=True, comment="LGPD identification; anonymize: erase"),
    sa.Column("full_name", sa.Text(), nullable=False, comment="LGPD identification; anonymize: replace"),
    sa.Column("preferred_name", sa.Text(), nullable=True, comment="LGPD identification; anonymize: erase"),
    sa.Column("birth_date", sa.Date(), nullable=True, comment="LGPD identification; anonymize: generalize; to January 1st of the year"),
    sa.Column("gender", sa.Text(), nullable=True, comment="LGPD identification; anonymize: keep"),
    sa.Column("marital_status", sa.Text(), nullable=True, comment="LGPD identification; anonymize: erase"),
    sa.Column("nationality", sa.Text(), server_default=sa.text("'brasileira'"), nullable=False, comment="LGPD identification; anonymize: keep"),
    sa.Column("deceased_indicator", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    sa.Column("deceased_date", sa.Date(), nullable=True, comment="LGPD identification; anonymize: generalize; to January 1st of the year"),
    sa.Column("photo_url", sa.Text(), nullable=True, comment="LGPD images; anonymize: erase"),
    sa.Column("cpf_encrypted", sa.LargeBinary(), nullable=True, comment="LGPD identification; anonymize: erase; ciphertext"),
    sa.Column("cpf_blind_index", sa.LargeBinary(), nullable=True, comment="LGPD identification; anonymize: erase; keyed HMAC of the 11 digits"),
    sa.Column("cns_encrypted", sa.LargeBinary(), nullable=True, comment="LGPD identification; anonymize: erase; ciphertext"),
    sa.Column("cns_blind_index", sa.LargeBinary(), nullable=True, comment="LGPD identification; anonymize: erase; keyed HMAC of the 15 digits"),
    sa.Column("rg_encrypted", sa.LargeBinary(), nullable=True, comment="LGPD identification; anonymize: erase; ciphertext"),
    sa.Column("rg_issuing_organ", sa.Text(), nullable=True, comment="LGPD identification; anonymize: erase"),
    sa.Column("passport_number_encrypted", sa.LargeBinary(), nullable=True, comment="LGPD identification; anonymize: erase; ciphertext"),
    sa.Column("external_ids", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False, comment="LGPD identification; anonymize: erase; set to {}"),
    sa.Column("phone_primary", sa.Text(), nullable=True, comment="LGPD contact; anonymize: erase"),
    sa.Column("phone_secondary", sa.Text(), nullable=True, comment="LGPD contact; anonymize: erase"),
    sa.Column("email", sa.Text(), nullable=True, comment="LGPD contact; anonymize: erase"),
    sa.Column("preferred_contact_method", sa.Text(), nullable=True),
    sa.Column("language_preference", sa.Text(), server_default=sa.text("'pt-BR'"), nullable=False),
    sa.Column("address_line1", sa.Text(), nullable=True, comment="LGPD address; anonymize: erase"),
    sa.Column("address_line2", sa.Text(), nullable=True, comment="LGPD address; anonymize: erase"),
    sa.Column("city", sa.Text(), nullable=True, comment="LGPD address; anonymize: erase"),
    sa.Column("state", sa.Text(), nullable=True, comment="LGPD address; anonymize: keep"),
    sa.Column("postal_code", sa.Text(), nullable=True, comment="LGPD address; anonymize: generalize; keep 5-digit prefix, pad with 000"),
    sa.Column("country", sa.Text(), server_default=sa.text("'BR'"), nullable=False, comment="LGPD address; anonymize: keep"),
    sa.Column("blood_type", sa.Text(), nullable=True, comment="LGPD clinical; anonymize: keep"),
    sa.Column("allergies", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False, comment="LGPD clinical; anonymize: keep"),
    sa.Column("chronic_conditions", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False, comment="LGPD clinical; anonymize: keep"),
    sa.Column("current_medications", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False, comment="LGPD clinical; anonymize: keep"),
    sa.Column("accessibility_needs", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False, comment="LGPD clinical; anonymize: keep"),
    sa.Column("patient_notes_encrypted", sa.LargeBinary(), nullable=True, comment="LGPD clinical; anonymize: erase; ciphertext"),
    sa.Column("internal_notes_encrypted", sa.LargeBinary(), nullable=True, comment="LGPD clinical; anonymize: erase; ciphertext"),
    sa.Column("primary_professional_id", sa.UUID(), nullable=True),
    sa.Column("insurance_provider", sa.Text(), nullable=True, comment="LGPD insurance; anonymize: keep"),
    sa.Column("insurance_number", sa.Text(), nullable=True, comment="LGPD insurance; anonymize: erase"),
    sa.Column("insurance_plan", sa.Text(), nullable=True, comment="LGPD insurance; anonymize: keep"),
    sa.Column("ans_operator_code", sa.Text(), nullable=True, comment="LGPD insurance; anonymize: keep"),
    sa.Column("emergency_contact_name", sa.Text(), nullable=True, comment="LGPD emergency_contact; anonymize: erase"),
    sa.Column("emergency_contact_phone", sa.Text(), nullable=True, comment="LGPD emergency_contact; anonymize: erase"),
    sa.Column("emergency_contact_relationship", sa.Text(), nullable=True, comment="LGPD emergency_contact; anonymize: erase"),
    sa.Column("emergency_contact_cpf_encrypted", sa.LargeBinary(), nullable=True, comment="LGPD emergency_contact; anonymize: erase; ciphertext"),
    sa.Column("data_consent_status", sa.Text(), server_default=sa.text("'pending'"), nullable=False),
    sa.Column("data_consent_version", sa.Text(), nullable=True),
    sa.Column("data_retention_until", sa.Date(), nullable=True),
    sa.Column("anonymization_scheduled_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("anonymized_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("blocked_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("right_to_forget_requested_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("data_portability_requested_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("data_source", sa.Text(), nullable=True),
    sa.Column("registration_source", sa.Text(), nullable=True),
    sa.Column("no_show_risk_score", sa.Integer(), nullable=True),
    sa.Column("total_no_shows", sa.Integer(), server_default=sa.text("0"), nullable=False),
    sa.Column("total_appointments", sa.Integer(), server_default=sa.text("0"), nullable=False),
    sa.Column("last_no_show_date", sa.Date(), nullable=True),
    sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
    sa.Column("last_visit_date", sa.Date(), nullable=True),
    sa.Column("next_appointment_date", sa.Date(), nullable=True),
    sa.Column("created_by", sa.UUID(), nullable=True, comment="actor: staff user id or named system actor; no FK on purpose"),
    sa.Column("updated_by", sa.UUID(), nullable=True, comment="actor: staff user id or named system actor; no FK on purpose"),
    sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
    sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    sa.CheckConstraint("ans_operator_code ~ '^[0-9]{6}$'", name=op.f("ck_patients_ans_operator_code_format")),
    sa.CheckConstraint("blood_type IN ('A+', 'A-', 'B+', 'B-', 'AB+', 'AB-', 'O+', 'O-')", name=op.f("ck_patients_blood_type_valid")),
    sa.CheckConstraint("country ~ '^[A-Z]{2}$'", name=op.f("ck_patients_country_format")),
    sa.CheckConstraint("data_consent_status IN ('pending', 'given', 'withdrawn', 'expired')", name=op.f("ck_patients_data_consent_status_valid")),
    sa.CheckConstraint("emergency_contact_phone ~ '^[1-9][1-9][0-9]{8,9}$'", name=op.f("ck_patients_emergency_contact_phone_format")),
    sa.CheckConstraint("gender IN ('female', 'male', 'other', 'unknown')", name=op.f("ck_patients_gender_valid")),
    sa.CheckConstraint("marital_status IN ('single', 'married', 'stable_union', 'separated', 'divorced', 'widowed', 'unknown')", name=op.f("ck_patients_marital_status_valid")),
    sa.CheckConstraint("phone_primary ~ '^[1-9][1-9][0-9]{8,9}$'", name=op.f("ck_patients_phone_primary_format")),
    sa.CheckConstraint("phone_secondary ~ '^[1-9][1-9][0-9]{8,9}$'", name=op.f("ck_patients_phone_secondary_format")),
    sa.CheckConstraint("postal_code ~ '^[0-9]{8}$'", name=op.f("ck_patients_postal_code_format")),
    sa.CheckConstraint("preferred_contact_method IN ('phone', 'sms', 'whatsapp', 'email', 'mail')", name=op.f("ck_patients_preferred_contact_method_valid")),
    sa.CheckConstraint("state IN ('AC', 'AL', 'AP', 'AM', 'BA', 'CE', 'DF', 'ES', 'GO', 'MA', 'MT', 'MS', 'MG', 'PA', 'PB', 'PR', 'PE', 'PI', 'RJ', 'RN', 'RS', 'RO', 'RR', 'SC', 'SP', 'SE', 'TO')", name=op.f("ck_patients_state_uf")),
    sa.CheckConstraint("deceased_date >= birth_date", name=op.f("ck_patients_deceased_after_birth")),
    sa.CheckConstraint("deceased_date IS NULL OR deceased_indicator", name=op.f("ck_patients_deceased_date_needs_indicator")),
    sa.CheckConstraint("no_show_risk_score BETWEEN 0 AND 100", name=op.f("ck_patients_no_show_risk_score_range")),
    sa.CheckConstraint("total_appointments >= 0", name=op.f("ck_patients_total_appointments_non_negative")),
    sa.CheckConstraint("total_no_shows <= total_appointments", name=op.f("ck_patients_no_shows_within_total")),
    sa.CheckConstraint("total_no_shows >= 0", name=op.f("ck_patients_total_no_shows_non_negative")),
    sa.CheckConstraint("version >= 1", name=op.f("ck_patients_version_positive")),
    sa.ForeignKeyConstraint(["clinic_id", "primary_professional_id"], ["professionals.clinic_id", "professionals.id"], name=op.f("fk_patients_clinic_id_primary_professional_id_professionals"), ondelete="SET NULL (primary_professional_id)"),
    sa.ForeignKeyConstraint(["clinic_id"], ["clinics.id"], name=op.f("fk_patients_clinic_id_clinics"), ondelete="RESTRICT"),
    sa.PrimaryKeyConstraint("clinic_id", "id", name=op.f("pk_patients")),
    sa.UniqueConstraint("clinic_id", "cns_blind_index", name=op.f("uq_patients_clinic_id_cns_blind_index")),
    sa.UniqueConstraint("clinic_id", "cpf_blind_index", name=op.f("uq_patients_clinic_id_cpf_blind_index")),
    sa.UniqueConstraint("clinic_id", "medical_record_number", name=op.f("uq_patients_clinic_id_medical_record_number")),
    info={"scope": "tenant"}
    )
    op.create_index(op.f("ix_patients_clinic_id_created_at"), "patients", ["clinic_id", "created_at"], unique=False)
    op.create_index(op.f("ix_patients_clinic_id_data_consent_status"), "patients", ["clinic_id", "data_consent_status"], unique=False)
    op.create_index(op.f("ix_patients_clinic_id_is_active"), "patients", ["clinic_id", "is_active"], unique=False)
    op.create_index(op.f("ix_patients_clinic_id_last_visit_date"), "patients", ["clinic_id", "last_visit_date"], unique=False)
    op.create_index(op.f("ix_patients_clinic_id_no_show_risk_score"), "patients", ["clinic_id", "no_show_risk_score"], unique=False)
    op.create_index(op.f("ix_patients_clinic_id_primary_professional_id"), "patients", ["clinic_id", "primary_professional_id"], unique=False)
    op.create_index(op.f("ix_patients_clinic_id_updated_at"), "patients", ["clinic_id", "updated_at"], unique=False)
    op.create_table("appointments",
    sa.Column("clinic_id", sa.UUID(), nullable=False),
    sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
    sa.Column("patient_id", sa.UUID(), nullable=False),
    sa.Column("professional_id", sa.UUID(), nullable=False),
    sa.Column("service_type_id", sa.UUID(), nullable=True),
    sa.Column("start_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("end_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("time_zone", sa.Text(), server_default=sa.text("'America/Sao_Paulo'"), nullable=False),
    sa.Column("appointment_type", sa.Text(), server_default=sa.text("'in_person'"), nullable=False),
    sa.Column("status", sa.Text(), server_default=sa.text("'scheduled'"), nullable=False),
    sa.Column("priority", sa.Text(), server_default=sa.text("'normal'"), nullable=False),
    sa.Column("room_id", sa.Text(), nullable=True),
    sa.Column("location", sa.Text(), nullable=True),
    sa.Column("chief_complaint", sa.Text(), nullable=True, comment="LGPD clinical; anonymize: erase"),
    sa.Column("tuss_code", sa.Text(), nullable=True),
    sa.Column("tuss_procedure_name", sa.Text(), nullable=True),
    sa.Column("clinical_notes_encrypted", sa.LargeBinary(), nullable=True, comment="LGPD clinical; anonymize: erase; ciphertext"),
    sa.Column("internal_notes_encrypted", sa.LargeBinary(), nullable=True, comment="LGPD clinical; anonymize: erase; ciphertext; staff only"),
    sa.Column("notes", sa.Text(), nullable=True, comment="LGPD clinical; anonymize: erase; patient-visible"),
    sa.Column("follow_up_required", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    sa.Column("follow_up_date", sa.Date(), nullable=True),
    sa.Column("follow_up_instructions", sa.Text(), nullable=True, comment="LGPD clinical; anonymize: erase"),
    sa.Column("patient_confirmed", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    sa.Column("patient_confirmed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("reminder_sent_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("confirmation_sent_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("whatsapp_reminder_sent", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    sa.Column("sms_reminder_sent", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    sa.Column("email_reminder_sent", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    sa.Column("reminder_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
    sa.Column("no_show_risk_score", sa.Integer(), nullable=True),
    sa.Column("no_show_model_version", sa.Text(), nullable=True),
    sa.Column("no_show_risk_factors", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column("no_show_predicted_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("no_show_actual_outcome", sa.Text(), nullable=True),
    sa.Column("check_in_time", sa.DateTime(timezone=True), nullable=True),
    sa.Column("check_out_time", sa.DateTime(timezone=True), nullable=True),
    sa.Column("actual_start_time", sa.DateTime(timezone=True), nullable=True),
    sa.Column("actual_end_time", sa.DateTime(timezone=True), nullable=True),
    sa.Column("waiting_minutes", sa.Integer(), nullable=True),
    sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("cancelled_by", sa.UUID(), nullable=True, comment="actor: staff user id or named system actor; no FK on purpose"),
    sa.Column("cancellation_reason", sa.Text(), nullable=True),
    sa.Column("cancellation_fee", sa.Numeric(precision=10, scale=2), nullable=True),
    sa.Column("rescheduled_from_id", sa.UUID(), nullable=True),
    sa.Column("reschedule_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
    sa.Column("last_rescheduled_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("rescheduling_reason", sa.Text(), nullable=True),
    sa.Column("estimated_cost", sa.Numeric(precision=10, scale=2), nullable=True),
    sa.Column("actual_cost", sa.Numeric(precision=10, scale=2), nullable=True),
    sa.Column("copay_amount", sa.Numeric(precision=10, scale=2), nullable=True),
    sa.Column("payment_status", sa.Text(), server_default=sa.text("'pending'"), nullable=False),
    sa.Column("insurance_covered", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    sa.Column("prior_auth_required", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    sa.Column("prior_auth_number", sa.Text(), nullable=True, comment="LGPD insurance; anonymize: erase"),
    sa.Column("prior_auth_status", sa.Text(), server_default=sa.text("'not_required'"), nullable=False),
    sa.Column("patient_satisfaction_score", sa.SmallInteger(), nullable=True),
    sa.Column("patient_feedback", sa.Text(), nullable=True, comment="LGPD clinical; anonymize: erase; free text"),
    sa.Column("created_by", sa.UUID(), nullable=False, comment="actor: staff user id or named system actor; no FK on purpose"),
    sa.Column("updated_by", sa.UUID(), nullable=True, comment="actor: staff user id or named system actor; no FK on purpose"),
    sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    postgresql.ExcludeConstraint((sa.column("clinic_id"), "="), (sa.column("professional_id"), "="), (sa.text("tstzrange(start_time, end_time, '[)')"), "&&"), where=sa.text("status IN ('scheduled', 'confirmed', 'in_progress', 'completed')"), using="gist", name="ex_appointments_no_overlap"),
    sa.CheckConstraint("appointment_type IN ('in_person', 'telemedicine', 'hybrid')", name=op.f("ck_appointments_appointment_type_valid")),
    sa.CheckConstraint("cancellation_reason IN ('patient', 'professional', 'clinic', 'no_show', 'medical', 'scheduling_error', 'other')", name=op.f("ck_appointments_cancellation_reason_valid")),
    sa.CheckConstraint("no_show_actual_outcome IN ('attended', 'no_show', 'cancelled')", name=op.f("ck_appointments_no_show_actual_outcome_valid")),
    sa.CheckConstraint("payment_status IN ('pending', 'paid', 'partially_paid', 'refunded', 'waived', 'insurance_pending')", name=op.f("ck_appointments_payment_status_valid")),
    sa.CheckConstraint("prior_auth_status IN ('not_required', 'pending', 'approved', 'denied')", name=op.f("ck_appointments_prior_auth_status_valid")),
    sa.CheckConstraint("priority IN ('low', 'normal', 'high', 'urgent', 'emergency')", name=op.f("ck_appointments_priority_valid")),
    sa.CheckConstraint("status IN ('scheduled', 'confirmed', 'in_progress', 'completed', 'cancelled', 'no_show', 'rescheduled')", name=op.f("ck_appointments_status_valid")),
    sa.CheckConstraint("tuss_code ~ '^[0-9]{8}$'", name=op.f("ck_appointments_tuss_code_format")),
    sa.CheckConstraint("actual_cost >= 0", name=op.f("ck_appointments_actual_cost_non_negative")),
    sa.CheckConstraint("actual_end_time >= actual_start_time", name=op.f("ck_appointments_actual_end_after_start")),
    sa.CheckConstraint("cancellation_fee >= 0", name=op.f("ck_appointments_cancellation_fee_non_negative")),
    sa.CheckConstraint("check_out_time >= check_in_time", name=op.f("ck_appointments_check_out_after_check_in")),
    sa.CheckConstraint("copay_amount >= 0", name=op.f("ck_appointments_copay_amount_non_negative")),
    sa.CheckConstraint("end_time > start_time", name=op.f("ck_appointments_end_after_start")),
    sa.CheckConstraint("estimated_cost >= 0", name=op.f("ck_appointments_estimated_cost_non_negative")),
    sa.CheckConstraint("no_show_risk_score BETWEEN 0 AND 100", name=op.f("ck_appointments_no_show_risk_score_range")),
    sa.CheckConstraint("patient_satisfaction_score BETWEEN 1 AND 5", name=op.f("ck_appointments_patient_satisfaction_score_range")),
    sa.CheckConstraint("reminder_count >= 0", name=op.f("ck_appointments_reminder_count_non_negative")),
    sa.CheckConstraint("reschedule_count >= 0", name=op.f("ck_appointments_reschedule_count_non_negative")),
    sa.CheckConstraint("rescheduled_from_id <> id", name=op.f("ck_appointments_not_rescheduled_from_itself")),
    sa.CheckConstraint("version >= 1", name=op.f("ck_appointments_version_positive")),
    sa.CheckConstraint("waiting_minutes >= 0", name=op.f("ck_appointments_waiting_minutes_non_negative")),
    sa.ForeignKeyConstraint(["clinic_id", "patient_id"], ["patients.clinic_id", "patients.id"], name=op.f("fk_appointments_clinic_id_patient_id_patients"), ondelete="RESTRICT"),
    sa.ForeignKeyConstraint(["clinic_id", "professional_id"], ["professionals.clinic_id", "professionals.id"], name=op.f("fk_appointments_clinic_id_professional_id_professionals"), ondelete="RESTRICT"),
    sa.ForeignKeyConstraint(["clinic_id", "rescheduled_from_id"], ["appointments.clinic_id", "appointments.id"], name=op.f("fk_appointments_clinic_id_rescheduled_from_id_appointments"), ondelete="SET NULL (rescheduled_from_id)"),
    sa.ForeignKeyConstraint(["clinic_id", "service_type_id"], ["service_types.clinic_id", "service_types.id"], name=op.f("fk_appointments_clinic_id_service_type_id_service_types"), ondelete="SET NULL (service_type_id)"),
    sa.ForeignKeyConstraint(["clinic_id"], ["clinics.id"], name=op.f("fk_appointments_clinic_id_clinics"), ondelete="RESTRICT"),
    sa.PrimaryKeyConstraint("clinic_id", "id", name=op.f("pk_appointments")),
    info={"scope": "tenant"}
    )
    op.create_index(op.f("ix_appointments_clinic_id_no_show_risk_score"), "appointments", ["clinic_id", "no_show_risk_score"], unique=False)
    op.create_index(op.f("ix_appointments_clinic_id_patient_id_start_time"), "appointments", ["clinic_id", "patient_id", "start_time"], unique=False)
    op.create_index(op.f("ix_appointments_clinic_id_professional_id_start_time"), "appointments", ["clinic_id", "professional_id", "start_time"], unique=False)
    op.create_index(op.f("ix_appointments_clinic_id_rescheduled_from_id"), "appointments", ["clinic_id", "rescheduled_from_id"], unique=False)
    op.create_index(op.f("ix_appointments_clinic_id_service_type_id"), "appointments", ["clinic_id", "service_type_id"], unique=False)
    op.create_index(op.f("ix_appointments_clinic_id_start_time"), "appointments", ["clinic_id", "start_time"], unique=False)
    op.create_index(op.f("ix_appointments_clinic_id_status_start_time"), "appointments", ["clinic_id", "status", "start_time"], unique=False)
    op.create_index(op.f("ix_appointments_clinic_id_tuss_code"), "appointments", ["clinic_id", "tuss_code"], unique=False)
    op.create_table("consent_records",
    sa.Column("clinic_id", sa.UUID(), nullable=False),
    sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
    sa.Column("patient_id", sa.UUID(), nullable=False),
    sa.Column("purpose", sa.Text(), nullable=False),
    sa.Column("legal_basis", sa.Text(), nullable=False),
    sa.Column("status", sa.Text(), nullable=False),
    sa.Column("given_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("collection_method", sa.Text(), nullable=True),
    sa.Column("terms_version", sa.Text(), nullable=False),
    sa.Column("terms_hash", sa.Text(), nullable=False, comment="SHA-256 (lowercase hex) of the exact terms text shown"),
    sa.Column("evidence", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False, comment="LGPD consent; anonymize: generalize; keep channel and signature ref, drop ip"),
    sa.Column("data_categories", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
    sa.Column("collected_by", sa.UUID(), nullable=True, comment="actor: staff user id or named system actor; no FK on purpose"),
    sa.Column("supersedes_id", sa.UUID(), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    sa.CheckConstraint("collection_method IN ('written', 'digital_signature', 'online_form', 'verbal_recorded')", name=op.f("ck_consent_records_collection_method_valid")),
    sa.CheckConstraint("data_categories <@ ARRAY['identification', 'contact', 'address', 'clinical', 'insurance', 'emergency_contact', 'consent', 'financial', 'marketing', 'images', 'audit']::text[]", name=op.f("ck_consent_records_data_categories_valid")),
    sa.CheckConstraint("legal_basis IN ('consent', 'legal_obligation', 'health_protection', 'research', 'rights_exercise', 'life_protection', 'fraud_prevention', 'contract', 'legitimate_interest')", name=op.f("ck_consent_records_legal_basis_valid")),
    sa.CheckConstraint("purpose IN ('treatment', 'data_processing', 'marketing', 'research', 'data_sharing', 'telemedicine', 'image_use', 'insurance_sharing', 'emergency_contact')", name=op.f("ck_consent_records_purpose_valid")),
    sa.CheckConstraint("status <> 'granted' OR given_at IS NOT NULL", name=op.f("ck_consent_records_granted_needs_given_at")),
    sa.CheckConstraint("status <> 'revoked' OR revoked_at IS NOT NULL", name=op.f("ck_consent_records_revoked_needs_revoked_at")),
    sa.CheckConstraint("status IN ('pending', 'granted', 'revoked', 'expired')", name=op.f("ck_consent_records_status_valid")),
    sa.CheckConstraint("terms_hash ~ '^[0-9a-f]{64}$'", name=op.f("ck_consent_records_terms_hash_format")),
    sa.CheckConstraint("expires_at > given_at", name=op.f("ck_consent_records_expires_after_given")),
    sa.CheckConstraint("revoked_at >= given_at", name=op.f("ck_consent_records_revoked_after_given")),
    sa.CheckConstraint("supersedes_id <> id", name=op.f("ck_consent_records_not_superseding_itself")),
    sa.ForeignKeyConstraint(["clinic_id", "patient_id"], ["patients.clinic_id", "patients.id"], name=op.f("fk_consent_records_clinic_id_patient_id_patients"), ondelete="RESTRICT"),
    sa.ForeignKeyConstraint(["clinic_id", "supersedes_id"], ["consent_records.clinic_id", "consent_records.id"], name=op.f("fk_consent_records_clinic_id_supersedes_id_consent_records"), ondelete="SET NULL (supersedes_id)"),
    sa.ForeignKeyConstraint(["clinic_id"], ["clinics.id"], name=op.f("fk_consent_records_clinic_id_clinics"), ondelete="RESTRICT"),
    sa.PrimaryKeyConstraint("clinic_id", "id", name=op.f("pk_consent_records")),
    sa.UniqueConstraint("clinic_id", "supersedes_id", name=op.f("uq_consent_records_clinic_id_supersedes_id")),
    info={"scope": "tenant"}
    )
    op.create_index(op.f("ix_consent_records_clinic_id_patient_id_purpose_created_at"), "consent_records", ["clinic_id", "patient_id", "purpose", "created_at"], unique=False)
    op.create_table("data_subject_requests",
    sa.Column("clinic_id", sa.UUID(), nullable=False),
    sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
    sa.Column("patient_id", sa.UUID(), nullable=False),
    sa.Column("kind", sa.Text(), nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    sa.Column("identity_verified_by", sa.UUID(), nullable=True, comment="actor: staff user id or named system actor; no FK on purpose"),
    sa.Column("identity_verified_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("status", sa.Text(), server_default=sa.text("'open'"), nullable=False),
    sa.Column("fulfilled_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("refusal_reason", sa.Text(), nullable=True),
    sa.Column("response_sha256", sa.Text(), nullable=True, comment="SHA-256 (lowercase hex) of the answer sent to the patient"),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    sa.CheckConstraint("kind IN ('confirmation', 'access', 'correction', 'anonymization', 'blocking', 'deletion', 'portability', 'sharing_information', 'consent_revocation')", name=op.f("ck_data_subject_requests_kind_valid")),
    sa.CheckConstraint("response_sha256 ~ '^[0-9a-f]{64}$'", name=op.f("ck_data_subject_requests_response_sha256_format")),
    sa.CheckConstraint("status <> 'fulfilled' OR fulfilled_at IS NOT NULL", name=op.f("ck_data_subject_requests_fulfilled_needs_date")),
    sa.CheckConstraint("status <> 'refused' OR refusal_reason IS NOT NULL", name=op.f("ck_data_subject_requests_refused_needs_reason")),
    sa.CheckConstraint("status IN ('open', 'in_progress', 'fulfilled', 'refused')", name=op.f("ck_data_subject_requests_status_valid")),
    sa.CheckConstraint("due_at > received_at", name=op.f("ck_data_subject_requests_due_after_received")),
    sa.ForeignKeyConstraint(["clinic_id", "patient_id"], ["patients.clinic_id", "patients.id"], name=op.f("fk_data_subject_requests_clinic_id_patient_id_patients"), ondelete="RESTRICT"),
    sa.ForeignKeyConstraint(["clinic_id"], ["clinics.id"], name=op.f("fk_data_subject_requests_clinic_id_clinics"), ondelete="RESTRICT"),
    sa.PrimaryKeyConstraint("clinic_id", "id", name=op.f("pk_data_subject_requests")),
    info={"scope": "tenant"}
    )
    op.create_index(op.f("ix_data_subject_requests_clinic_id_patient_id_received_at"), "data_subject_requests", ["clinic_id", "patient_id", "received_at"], unique=False)
    op.create_index(op.f("ix_data_subject_requests_clinic_id_status_due_at"), "data_subject_requests", ["clinic_id", "status", "due_at"], unique=False)
    op.create_table("disclosures",
    sa.Column("clinic_id", sa.UUID(), nullable=False),
    sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
    sa.Column("patient_id", sa.UUID(), nullable=False),
    sa.Column("disclosed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    sa.Column("recipient_name", sa.Text(), nullable=False),
    sa.Column("recipient_address", sa.Text(), nullable=True),
    sa.Column("data_description", sa.Text(), nullable=False),
    sa.Column("data_categories", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
    sa.Column("purpose", sa.Text(), nullable=False),
    sa.Column("legal_basis", sa.Text(), nullable=False),
    sa.Column("consent_record_id", sa.UUID(), nullable=True),
    sa.Column("disclosed_by", sa.UUID(), nullable=True, comment="actor: staff user id or named system actor; no FK on purpose"),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    sa.CheckConstraint("data_categories <@ ARRAY['identification', 'contact', 'address', 'clinical', 'insurance', 'emergency_contact', 'consent', 'financial', 'marketing', 'images', 'audit']::text[]", name=op.f("ck_disclosures_data_categories_valid")),
    sa.CheckConstraint("legal_basis IN ('consent', 'legal_obligation', 'health_protection', 'research', 'rights_exercise', 'life_protection', 'fraud_prevention', 'contract', 'legitimate_interest')", name=op.f("ck_disclosures_legal_basis_valid")),
    sa.ForeignKeyConstraint(["clinic_id", "consent_record_id"], ["consent_records.clinic_id", "consent_records.id"], name=op.f("fk_disclosures_clinic_id_consent_record_id_consent_records"), ondelete="SET NULL (consent_record_id)"),
    sa.ForeignKeyConstraint(["clinic_id", "patient_id"], ["patients.clinic_id", "patients.id"], name=op.f("fk_disclosures_clinic_id_patient_id_patients"), ondelete="RESTRICT"),
    sa.ForeignKeyConstraint(["clinic_id"], ["clinics.id"], name=op.f("fk_disclosures_clinic_id_clinics"), ondelete="RESTRICT"),
    sa.PrimaryKeyConstraint("clinic_id", "id", name=op.f("pk_disclosures")),
    info={"scope": "tenant"}
    )
    op.create_index(op.f("ix_disclosures_clinic_id_disclosed_at"), "disclosures", ["clinic_id", "disclosed_at"], unique=False)
    op.create_index(op.f("ix_disclosures_clinic_id_patient_id_disclosed_at"), "disclosures", ["clinic_id", "patient_id", "disclosed_at"], unique=False)
    # ### end Alembic commands ###

    roles = migration_roles()
    for statement in SECURITY_SQL:
        op.execute(statement.format(owner=roles.owner, app=roles.app, service=roles.service))

def downgrade() -> None:
    # this policy reads clinic_memberships, which is dropped before staff_users
    op.execute("DROP POLICY IF EXISTS staff_users_member_select ON staff_users")
    # ### commands auto generated by Alembic - please adjust! ###
    op.drop_index(op.f("ix_disclosures_clinic_id_patient_id_disclosed_at"), table_name="disclosures")
    op.drop_index(op.f("ix_disclosures_clinic_id_disclosed_at"), table_name="disclosures")
    op.drop_table("disclosures")
    op.drop_index(op.f("ix_data_subject_requests_clinic_id_status_due_at"), table_name="data_subject_requests")
    op.drop_index(op.f("ix_data_subject_requests_clinic_id_patient_id_received_at"), table_name="data_subject_requests")
    op.drop_table("data_subject_requests")
    op.drop_index(op.f("ix_consent_records_clinic_id_patient_id_purpose_created_at"), table_name="consent_records")
    op.drop_table("consent_records")
    op.drop_index(op.f("ix_appointments_clinic_id_tuss_code"), table_name="appointments")
    op.drop_index(op.f("ix_appointments_clinic_id_status_start_time"), table_name="appointments")
    op.drop_index(op.f("ix_appointments_clinic_id_start_time"), table_name="appointments")
    op.drop_index(op.f("ix_appointments_clinic_id_service_type_id"), table_name="appointments")
    op.drop_index(op.f("ix_appointments_clinic_id_rescheduled_from_id"), table_name="appointments")
    op.drop_index(op.f("ix_appointments_clinic_id_professional_id_start_time"), table_name="appointments")
    op.drop_index(op.f("ix_appointments_clinic_id_patient_id_start_time"), table_name="appointments")
    op.drop_index(op.f("ix_appointments_clinic_id_no_show_risk_score"), table_name="appointments")
    op.drop_table("appointments")
    op.drop_index(op.f("ix_patients_clinic_id_updated_at"), table_name="patients")
    op.drop_index(op.f("ix_patients_clinic_id_primary_professional_id"), table_name="patients")
    op.drop_index(op.f("ix_patients_clinic_id_no_show_risk_score"), table_name="patients")
    op.drop_index(op.f("ix_patients_clinic_id_last_visit_date"), table_name="patients")
    op.drop_index(op.f("ix_patients_clinic_id_is_active"), table_name="patients")
    op.drop_index(op.f("ix_patients_clinic_id_data_consent_status"), table_name="patients")
    op.drop_index(op.f("ix_patients_clinic_id_created_at"), table_name="patients")
    op.drop_table("patients")
    op.drop_index(op.f("ix_service_types_clinic_id_is_active"), table_name="service_types")
    op.drop_table("service_types")
    op.drop_index(op.f("ix_security_incidents_clinic_id_status_detected_at"), table_name="security_incidents")
    op.drop_index(op.f("ix_security_incidents_clinic_id_notification_due_at"), table_name="security_incidents")
    op.drop_table("security_incidents")
    op.drop_table("retention_policies")
    op.drop_index(op.f("ix_professionals_clinic_id_is_active"), table_name="professionals")
    op.drop_table("professionals")
    op.drop_table("clinic_memberships")
    op.drop_index("uq_staff_users_lower_email", table_name="staff_users")
    op.drop_table("staff_users")
    op.drop_table("clinics")
    op.drop_index(op.f("ix_audit_events_clinic_id_resource_type_resource_id"), table_name="audit_events")
    op.drop_index(op.f("ix_audit_events_clinic_id_patient_ref_occurred_at"), table_name="audit_events")
    op.drop_index(op.f("ix_audit_events_clinic_id_occurred_at"), table_name="audit_events")
    op.drop_index(op.f("ix_audit_events_clinic_id_actor_id_occurred_at"), table_name="audit_events")
    op.drop_index(op.f("ix_audit_events_clinic_id_action_occurred_at"), table_name="audit_events")
    op.drop_table("audit_events")
    # ### end Alembic commands ###
    op.execute("DROP FUNCTION IF EXISTS neonpro_touch_updated_at()")
    op.execute("DROP FUNCTION IF EXISTS neonpro_refuse_change()")
