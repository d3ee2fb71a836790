"""no-show models, risk scores and the appointment change feed

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 15:55:09.457690+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from neonpro.adapters.db.migrations import migration_roles

revision: str = '0007'
down_revision: str | Sequence[str] | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# frozen copies of security.py and feed_sql.py at this revision; {app}, {service}... are
# role names
SECURITY_SQL: tuple[str, ...] = (
    'ALTER TABLE no_show_models ENABLE ROW LEVEL SECURITY',
    'ALTER TABLE no_show_models FORCE ROW LEVEL SECURITY',
    'REVOKE ALL ON no_show_models FROM PUBLIC',
    "CREATE POLICY no_show_models_tenant_select ON no_show_models AS PERMISSIVE FOR SELECT TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "CREATE POLICY no_show_models_tenant_insert ON no_show_models AS PERMISSIVE FOR INSERT TO {app} WITH CHECK (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    'GRANT SELECT, INSERT ON no_show_models TO {app}',
    'GRANT SELECT, INSERT ON no_show_models TO {service}',
    'ALTER TABLE appointment_risk_scores ENABLE ROW LEVEL SECURITY',
    'ALTER TABLE appointment_risk_scores FORCE ROW LEVEL SECURITY',
    'REVOKE ALL ON appointment_risk_scores FROM PUBLIC',
    "CREATE POLICY appointment_risk_scores_tenant_select ON appointment_risk_scores AS PERMISSIVE FOR SELECT TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "CREATE POLICY appointment_risk_scores_tenant_insert ON appointment_risk_scores AS PERMISSIVE FOR INSERT TO {app} WITH CHECK (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "CREATE POLICY appointment_risk_scores_tenant_update ON appointment_risk_scores AS PERMISSIVE FOR UPDATE TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid) WITH CHECK (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "CREATE POLICY appointment_risk_scores_tenant_delete ON appointment_risk_scores AS PERMISSIVE FOR DELETE TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    'GRANT SELECT, INSERT, UPDATE, DELETE ON appointment_risk_scores TO {app}',
    'GRANT SELECT, INSERT, UPDATE, DELETE ON appointment_risk_scores TO {service}',
    "CREATE POLICY appointment_risk_scores_legal_hold_select ON appointment_risk_scores AS PERMISSIVE FOR SELECT TO {legal_hold} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    'GRANT SELECT ON appointment_risk_scores TO {legal_hold}',
    "CREATE FUNCTION neonpro_appointment_feed() RETURNS trigger\nLANGUAGE plpgsql AS $$\nDECLARE\n  v_row appointments;\n  v_event text;\nBEGIN\n  IF TG_OP = 'DELETE' THEN\n    v_row := OLD;\n    v_event := 'deleted';\n  ELSE\n    v_row := NEW;\n    IF TG_OP = 'INSERT' THEN\n      v_event := CASE WHEN NEW.rescheduled_from_id IS NULL THEN 'booked' ELSE 'rescheduled' END;\n    ELSIF NEW.status IS DISTINCT FROM OLD.status THEN\n      v_event := CASE NEW.status\n        WHEN 'confirmed' THEN 'confirmed' WHEN 'cancelled' THEN 'cancelled'\n        WHEN 'in_progress' THEN 'started' WHEN 'completed' THEN 'completed'\n        WHEN 'no_show' THEN 'no_show' END;\n    ELSIF OLD.check_in_time IS NULL AND NEW.check_in_time IS NOT NULL THEN\n      v_event := 'checked_in';\n    END IF;\n  END IF;\n  IF v_event IS NULL OR v_row.blocked_at IS NOT NULL THEN\n    RETURN NULL;\n  END IF;\n  PERFORM pg_notify('neonpro_appointments', json_build_object(\n    'clinic_id', v_row.clinic_id, 'appointment_id', v_row.id, 'event', v_event,\n    'status', v_row.status, 'version', v_row.version, 'patient_id', v_row.patient_id,\n    'professional_id', v_row.professional_id,\n    'rescheduled_from_id', v_row.rescheduled_from_id)::text);\n  RETURN NULL;\nEND\n$$",
    "CREATE FUNCTION neonpro_risk_outcome() RETURNS trigger\nLANGUAGE plpgsql AS $$\nBEGIN\n  UPDATE appointment_risk_scores s\n     SET actual_outcome = CASE NEW.status WHEN 'completed' THEN 'attended'\n                                          WHEN 'no_show' THEN 'no_show' ELSE 'cancelled' END,\n         outcome_at = now()\n   WHERE s.clinic_id = NEW.clinic_id AND s.appointment_id = NEW.id;\n  RETURN NULL;\nEND\n$$",
    'CREATE TRIGGER appointments_feed AFTER INSERT OR UPDATE OR DELETE ON appointments FOR EACH ROW EXECUTE FUNCTION neonpro_appointment_feed()',
    "CREATE TRIGGER appointments_risk_outcome AFTER UPDATE OF status ON appointments FOR EACH ROW WHEN (NEW.status IS DISTINCT FROM OLD.status AND NEW.status IN ('completed', 'no_show', 'cancelled')) EXECUTE FUNCTION neonpro_risk_outcome()",
)

DOWNGRADE_SQL: tuple[str, ...] = (
    'DROP TRIGGER IF EXISTS appointments_risk_outcome ON appointments',
    'DROP TRIGGER IF EXISTS appointments_feed ON appointments',
    'DROP FUNCTION IF EXISTS neonpro_risk_outcome()',
    'DROP FUNCTION IF EXISTS neonpro_appointment_feed()',
)


def _run(statements: tuple[str, ...]) -> None:
    roles = migration_roles()
    for statement in statements:
        op.execute(statement.replace("{owner}", roles.owner).replace("{app}", roles.app)
                   .replace("{service}", roles.service)
                   .replace("{legal_hold}", roles.legal_hold))


def upgrade() -> None:
    # ### commands auto generated by Alembic - please adjust! ###
    op.create_table('no_show_models',
    sa.Column('clinic_id', sa.UUID(), nullable=False),
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False, comment='logistic or prior (too little history)'),
    sa.Column('trained_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('trained_by', sa.UUID(), nullable=True, comment='actor: staff user id or named system actor; no FK on purpose'),
    sa.Column('training_rows', sa.Integer(), nullable=False),
    sa.Column('training_no_shows', sa.Integer(), nullable=False),
    sa.Column('history_from', sa.DateTime(timezone=True), nullable=True),
    sa.Column('history_to', sa.DateTime(timezone=True), nullable=True),
    sa.Column('params', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False, comment='feature names, scaling, coefficients: numbers only, no personal data'),
    sa.Column('metrics', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False, comment='hold-out AUC, Brier score and the prior-only baseline'),
    sa.CheckConstraint("kind IN ('logistic', 'prior')", name=op.f('ck_no_show_models_kind_valid')),
    sa.CheckConstraint('training_no_shows >= 0', name=op.f('ck_no_show_models_training_no_shows_non_negative')),
    sa.CheckConstraint('training_rows >= 0', name=op.f('ck_no_show_models_training_rows_non_negative')),
    sa.CheckConstraint('version > 0', name=op.f('ck_no_show_models_version_positive')),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinics.id'], name=op.f('fk_no_show_models_clinic_id_clinics'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('clinic_id', 'id', name=op.f('pk_no_show_models')),
    info={'scope': 'tenant'}
    )
    op.create_index(op.f('ix_no_show_models_clinic_id_version'), 'no_show_models', ['clinic_id', 'version'], unique=True)
    op.create_table('appointment_risk_scores',
    sa.Column('clinic_id', sa.UUID(), nullable=False),
    sa.Column('appointment_id', sa.UUID(), nullable=False),
    sa.Column('score', sa.SmallInteger(), nullable=False),
    sa.Column('model_id', sa.UUID(), nullable=False),
    sa.Column('model_version', sa.Text(), nullable=False),
    sa.Column('factors', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False, comment='top contributing factors: feature names, values and weights'),
    sa.Column('predicted_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('actual_outcome', sa.Text(), nullable=True, comment='set by trigger'),
    sa.Column('outcome_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("actual_outcome IN ('attended', 'no_show', 'cancelled')", name=op.f('ck_appointment_risk_scores_actual_outcome_valid')),
    sa.CheckConstraint('score BETWEEN 0 AND 100', name=op.f('ck_appointment_risk_scores_score_range')),
    sa.ForeignKeyConstraint(['clinic_id', 'appointment_id'], ['appointments.clinic_id', 'appointments.id'], name=op.f('fk_appointment_risk_scores_clinic_id_appointment_id_appointments'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['clinic_id', 'model_id'], ['no_show_models.clinic_id', 'no_show_models.id'], name=op.f('fk_appointment_risk_scores_clinic_id_model_id_no_show_models'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinics.id'], name=op.f('fk_appointment_risk_scores_clinic_id_clinics'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('clinic_id', 'appointment_id', name=op.f('pk_appointment_risk_scores')),
    info={'scope': 'tenant'}
    )
    op.create_index(op.f('ix_appointment_risk_scores_clinic_id_model_id'), 'appointment_risk_scores', ['clinic_id', 'model_id'], unique=False)
    op.create_index(op.f('ix_appointment_risk_scores_clinic_id_score'), 'appointment_risk_scores', ['clinic_id', 'score'], unique=False)
    # ### end Alembic commands ###
    _run(SECURITY_SQL)


def downgrade() -> None:
    _run(DOWNGRADE_SQL)
    # ### commands auto generated by Alembic - please adjust! ###
    op.drop_index(op.f('ix_appointment_risk_scores_clinic_id_score'), table_name='appointment_risk_scores')
    op.drop_index(op.f('ix_appointment_risk_scores_clinic_id_model_id'), table_name='appointment_risk_scores')
    op.drop_table('appointment_risk_scores')
    op.drop_index(op.f('ix_no_show_models_clinic_id_version'), table_name='no_show_models')
    op.drop_table('no_show_models')
    # ### end Alembic commands ###
