"""sealed audit chain and row change triggers

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 13:03:02.969732+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from neonpro.adapters.db.migrations import migration_roles

revision: str = '0003'
down_revision: str | Sequence[str] | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GENERATE_REF_KEY = "\nDO $key$\nDECLARE\n  k bytea := decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex')\n             || decode(repeat('00', 32), 'hex');\n  i bytea := k;\n  o bytea := k;\nBEGIN\n  FOR n IN 0..63 LOOP\n    i := set_byte(i, n, get_byte(k, n) # 54);\n    o := set_byte(o, n, get_byte(k, n) # 92);\n  END LOOP;\n  INSERT INTO audit_ref_keys (id, inner_pad, outer_pad) VALUES (1, i, o);\nEND\n$key$\n"

# Frozen copies of security._table_sql (new tables) and audit_sql.audit_ddl at this revision;
# {owner}, {app} and {service} are replaced by the configured role names.
TABLES_SQL: tuple[str, ...] = (
    'ALTER TABLE audit_chain_cuts ENABLE ROW LEVEL SECURITY',
    'ALTER TABLE audit_chain_cuts FORCE ROW LEVEL SECURITY',
    'REVOKE ALL ON audit_chain_cuts FROM PUBLIC',
    'GRANT SELECT ON audit_chain_cuts TO {service}',
    'ALTER TABLE audit_ref_keys ENABLE ROW LEVEL SECURITY',
    'ALTER TABLE audit_ref_keys FORCE ROW LEVEL SECURITY',
    'REVOKE ALL ON audit_ref_keys FROM PUBLIC',
)

AUDIT_SQL: tuple[str, ...] = (
    "CREATE FUNCTION neonpro_lp(v text) RETURNS text\nLANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$\n  SELECT CASE WHEN v IS NULL THEN '~' ELSE octet_length(v)::text || ':' || v END\n$$",
    'CREATE FUNCTION neonpro_audit_canonical(e audit_events, p_seq bigint, p_prev bytea)\nRETURNS bytea LANGUAGE sql STABLE PARALLEL SAFE AS $$\n  SELECT convert_to(\'neonpro-audit-v1\'\n    || neonpro_lp(e.clinic_id::text) || neonpro_lp(p_seq::text) || neonpro_lp(e.id::text)\n    || neonpro_lp(to_char(e.occurred_at AT TIME ZONE \'UTC\', \'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\'))\n    || neonpro_lp(e.actor_id::text) || neonpro_lp(e.actor_role) || neonpro_lp(e.action)\n    || neonpro_lp(e.resource_type) || neonpro_lp(e.resource_id)\n    || neonpro_lp(encode(e.patient_ref, \'hex\')) || neonpro_lp(e.status)\n    || neonpro_lp(e.risk_level) || neonpro_lp(host(e.ip_address)) || neonpro_lp(e.user_agent)\n    || neonpro_lp(e.session_id) || neonpro_lp(e.request_id) || neonpro_lp(e.details::text)\n    || neonpro_lp(to_char(e.retain_until, \'YYYY-MM-DD\'))\n    || neonpro_lp(encode(p_prev, \'hex\')), \'UTF8\')\n$$',
    "CREATE FUNCTION neonpro_audit_retention(p_action text, p_resource text, p_risk text)\nRETURNS interval LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$\n  SELECT CASE\n    WHEN p_resource IN ('patients', 'appointments', 'consent_records', 'disclosures',\n                        'data_subject_requests', 'patient')\n         AND p_action NOT IN ('VIEW', 'EXPORT', 'LEGAL_HOLD_READ') THEN interval '10 years'\n    WHEN p_risk = 'critical' THEN interval '7 years'\n    WHEN p_resource IN ('patients', 'appointments', 'consent_records', 'disclosures',\n                        'data_subject_requests', 'patient', 'appointment')\n         OR p_action IN ('VIEW', 'EXPORT', 'LEGAL_HOLD_READ') THEN interval '6 years'\n    WHEN p_action IN ('LOGIN', 'LOGOUT', 'LOGIN_FAILED') THEN interval '5 years'\n    ELSE interval '3 years'\n  END\n$$",
    "CREATE FUNCTION neonpro_patient_ref(p_patient uuid) RETURNS bytea\nLANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$\n  SELECT CASE WHEN p_patient IS NULL THEN NULL ELSE\n    sha256(k.outer_pad || sha256(k.inner_pad\n      || convert_to('patient_ref:' || p_patient::text, 'UTF8'))) END\n  FROM audit_ref_keys k WHERE k.id = 1\n$$",
    "CREATE FUNCTION neonpro_audit_before_insert() RETURNS trigger\nLANGUAGE plpgsql AS $$\nBEGIN\n  IF NEW.seq IS NOT NULL OR NEW.hash IS NOT NULL OR NEW.prev_hash IS NOT NULL THEN\n    RAISE EXCEPTION 'audit events are inserted unsealed; the sealer assigns seq and hash'\n      USING ERRCODE = 'insufficient_privilege';\n  END IF;\n  NEW.occurred_at := coalesce(NEW.occurred_at, now());\n  NEW.retain_until := (NEW.occurred_at AT TIME ZONE 'UTC')::date\n    + neonpro_audit_retention(NEW.action, NEW.resource_type, NEW.risk_level);\n  RETURN NEW;\nEND\n$$",
    "CREATE FUNCTION neonpro_audit_guard() RETURNS trigger\nLANGUAGE plpgsql AS $$\nBEGIN\n  IF TG_OP = 'UPDATE' THEN\n    IF OLD.seq IS NULL AND OLD.hash IS NULL AND NEW.seq IS NOT NULL AND NEW.hash IS NOT NULL\n       AND (to_jsonb(NEW) - ARRAY['seq', 'prev_hash', 'hash']) = (to_jsonb(OLD) - ARRAY['seq', 'prev_hash', 'hash']) THEN\n      RETURN NEW;  -- sealing: seq and hashes set once, the event itself unchanged\n    END IF;\n  ELSIF TG_OP = 'DELETE' THEN\n    IF OLD.seq IS NOT NULL AND EXISTS (SELECT 1 FROM audit_chain_cuts c\n        WHERE c.clinic_id = OLD.clinic_id AND c.seq >= OLD.seq) THEN\n      RETURN OLD;  -- pruning an archived segment below a signed cut\n    END IF;\n  END IF;\n  RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP\n    USING ERRCODE = 'insufficient_privilege';\nEND\n$$",
    "CREATE FUNCTION neonpro_audit_row_change() RETURNS trigger\nLANGUAGE plpgsql AS $$\nDECLARE\n  v_actor text := NULLIF(current_setting('app.actor_id', true), '');\n  v_row jsonb;\n  v_old jsonb;\n  v_fields text[];\n  v_action text;\n  v_clinic uuid;\n  v_patient uuid;\nBEGIN\n  IF v_actor IS NULL THEN\n    RAISE EXCEPTION 'no acting user for a change to %: set app.actor_id (jobs and '\n      'migrations act as named system actors)', TG_TABLE_NAME\n      USING ERRCODE = 'insufficient_privilege';\n  END IF;\n  IF TG_OP = 'DELETE' THEN v_row := to_jsonb(OLD); ELSE v_row := to_jsonb(NEW); END IF;\n  IF TG_OP = 'UPDATE' THEN\n    v_old := to_jsonb(OLD);\n    SELECT coalesce(array_agg(n.key ORDER BY n.key), '{}') INTO v_fields\n      FROM jsonb_each(v_row) n\n      WHERE n.value IS DISTINCT FROM v_old -> n.key AND n.key NOT IN ('updated_at', 'updated_by', 'version', 'search_name');\n    IF cardinality(v_fields) = 0 THEN\n      RETURN NULL;\n    END IF;\n    v_action := 'UPDATE';\n  ELSE\n    SELECT coalesce(array_agg(n.key ORDER BY n.key), '{}') INTO v_fields\n      FROM jsonb_each(v_row) n\n      WHERE n.value <> 'null'::jsonb AND n.key NOT IN ('updated_at', 'updated_by', 'version', 'search_name');\n    v_action := CASE TG_OP WHEN 'INSERT' THEN 'CREATE' ELSE 'DELETE' END;\n  END IF;\n  IF TG_TABLE_NAME = 'consent_records' AND TG_OP = 'INSERT' THEN\n    v_action := CASE v_row ->> 'status' WHEN 'granted' THEN 'CONSENT_GRANTED'\n      WHEN 'revoked' THEN 'CONSENT_REVOKED' WHEN 'expired' THEN 'CONSENT_EXPIRED'\n      ELSE 'CREATE' END;\n  END IF;\n  v_clinic := coalesce((v_row ->> 'clinic_id')::uuid, '00000000-0000-0000-0000-000000000000');\n  v_patient := CASE WHEN TG_TABLE_NAME = 'patients' THEN (v_row ->> 'id')::uuid\n                    ELSE (v_row ->> 'patient_id')::uuid END;\n  INSERT INTO audit_events (clinic_id, actor_id, actor_role, action, resource_type,\n      resource_id, patient_ref, status, risk_level, ip_address, user_agent, session_id,\n      request_id, details)\n  VALUES (v_clinic, v_actor::uuid, NULLIF(current_setting('app.actor_role', true), ''),\n      v_action, TG_TABLE_NAME, coalesce(v_row ->> 'id', v_row ->> 'user_id'),\n      neonpro_patient_ref(v_patient), 'success',\n      CASE WHEN TG_OP = 'DELETE' THEN 'medium' ELSE 'low' END,\n      NULLIF(current_setting('app.ip', true), '')::inet,\n      NULLIF(current_setting('app.user_agent', true), ''),\n      NULLIF(current_setting('app.session_id', true), ''),\n      NULLIF(current_setting('app.request_id', true), ''),\n      jsonb_build_object('fields', to_jsonb(v_fields), 'source', 'trigger'));\n  RETURN NULL;\nEND\n$$",
    "CREATE FUNCTION neonpro_audit_seal(p_clinic uuid, p_limit integer) RETURNS integer\nLANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$\nDECLARE\n  v_seq bigint;\n  v_prev bytea;\n  v_hash bytea;\n  v_count integer := 0;\n  r audit_events;\nBEGIN\n  -- one sealer per clinic at a time; writers never take this lock\n  PERFORM pg_advisory_xact_lock(hashtextextended('neonpro.audit.seal:' || p_clinic::text, 0));\n  SELECT e.seq, e.hash INTO v_seq, v_prev FROM audit_events e\n    WHERE e.clinic_id = p_clinic AND e.seq IS NOT NULL ORDER BY e.seq DESC LIMIT 1;\n  IF v_seq IS NULL THEN\n    SELECT c.seq, c.hash INTO v_seq, v_prev FROM audit_chain_cuts c\n      WHERE c.clinic_id = p_clinic ORDER BY c.seq DESC LIMIT 1;\n  END IF;\n  v_seq := coalesce(v_seq, 0);\n  FOR r IN SELECT * FROM audit_events e WHERE e.clinic_id = p_clinic AND e.seq IS NULL\n           ORDER BY e.occurred_at, e.id LIMIT p_limit LOOP\n    v_seq := v_seq + 1;\n    v_hash := sha256(neonpro_audit_canonical(r, v_seq, v_prev));\n    UPDATE audit_events SET seq = v_seq, prev_hash = v_prev, hash = v_hash\n      WHERE clinic_id = p_clinic AND id = r.id;\n    v_prev := v_hash;\n    v_count := v_count + 1;\n  END LOOP;\n  RETURN v_count;\nEND\n$$",
    'CREATE FUNCTION neonpro_audit_unsealed_clinics() RETURNS SETOF uuid\nLANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$\n  SELECT DISTINCT clinic_id FROM audit_events WHERE seq IS NULL\n$$',
    'REVOKE ALL ON FUNCTION neonpro_patient_ref(uuid) FROM PUBLIC',
    'REVOKE ALL ON FUNCTION neonpro_audit_seal(uuid, integer) FROM PUBLIC',
    'REVOKE ALL ON FUNCTION neonpro_audit_unsealed_clinics() FROM PUBLIC',
    'GRANT EXECUTE ON FUNCTION neonpro_patient_ref(uuid) TO {app}, {service}',
    'GRANT EXECUTE ON FUNCTION neonpro_audit_seal(uuid, integer) TO {service}',
    'GRANT EXECUTE ON FUNCTION neonpro_audit_unsealed_clinics() TO {service}',
    'CREATE POLICY audit_events_owner ON audit_events AS PERMISSIVE FOR ALL TO {owner} USING (true) WITH CHECK (true)',
    'CREATE POLICY audit_chain_cuts_owner ON audit_chain_cuts AS PERMISSIVE FOR ALL TO {owner} USING (true) WITH CHECK (true)',
    'CREATE POLICY audit_ref_keys_owner ON audit_ref_keys AS PERMISSIVE FOR SELECT TO {owner} USING (true)',
    'CREATE TRIGGER audit_events_before_insert BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION neonpro_audit_before_insert()',
    'CREATE TRIGGER audit_events_guard BEFORE UPDATE OR DELETE ON audit_events FOR EACH ROW EXECUTE FUNCTION neonpro_audit_guard()',
    'CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events FOR EACH STATEMENT EXECUTE FUNCTION neonpro_refuse_change()',
    'CREATE TRIGGER patients_audit AFTER INSERT OR UPDATE OR DELETE ON patients FOR EACH ROW EXECUTE FUNCTION neonpro_audit_row_change()',
    'CREATE TRIGGER appointments_audit AFTER INSERT OR UPDATE OR DELETE ON appointments FOR EACH ROW EXECUTE FUNCTION neonpro_audit_row_change()',
    'CREATE TRIGGER consent_records_audit AFTER INSERT OR UPDATE OR DELETE ON consent_records FOR EACH ROW EXECUTE FUNCTION neonpro_audit_row_change()',
    'CREATE TRIGGER disclosures_audit AFTER INSERT OR UPDATE OR DELETE ON disclosures FOR EACH ROW EXECUTE FUNCTION neonpro_audit_row_change()',
    'CREATE TRIGGER data_subject_requests_audit AFTER INSERT OR UPDATE OR DELETE ON data_subject_requests FOR EACH ROW EXECUTE FUNCTION neonpro_audit_row_change()',
    'CREATE TRIGGER professionals_audit AFTER INSERT OR UPDATE OR DELETE ON professionals FOR EACH ROW EXECUTE FUNCTION neonpro_audit_row_change()',
    'CREATE TRIGGER staff_users_audit AFTER INSERT OR UPDATE OR DELETE ON staff_users FOR EACH ROW EXECUTE FUNCTION neonpro_audit_row_change()',
    'CREATE TRIGGER clinic_memberships_audit AFTER INSERT OR UPDATE OR DELETE ON clinic_memberships FOR EACH ROW EXECUTE FUNCTION neonpro_audit_row_change()',
    'CREATE TRIGGER security_incidents_audit AFTER INSERT OR UPDATE OR DELETE ON security_incidents FOR EACH ROW EXECUTE FUNCTION neonpro_audit_row_change()',
)


def _run(statements: tuple[str, ...]) -> None:
    roles = migration_roles()
    for statement in statements:
        op.execute(statement.replace("{owner}", roles.owner).replace("{app}", roles.app)
                   .replace("{service}", roles.service))


def upgrade() -> None:
    op.create_table('audit_chain_cuts',
    sa.Column('clinic_id', sa.UUID(), nullable=False, comment='tenant, or the nil UUID for the system chain; no FK on purpose'),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('hash', sa.LargeBinary(), nullable=False),
    sa.Column('pruned_events', sa.BigInteger(), nullable=False),
    sa.Column('archive_sha256', sa.Text(), nullable=False),
    sa.Column('signature', sa.Text(), nullable=False, comment='HMAC-SHA256 of the cut, hex'),
    sa.Column('cut_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('seq >= 1', name=op.f('ck_audit_chain_cuts_seq_positive')),
    sa.PrimaryKeyConstraint('clinic_id', 'seq', name=op.f('pk_audit_chain_cuts')),
    info={'scope': 'tenant'}
    )
    op.create_table('audit_ref_keys',
    sa.Column('id', sa.SmallInteger(), nullable=False),
    sa.Column('inner_pad', sa.LargeBinary(), nullable=False),
    sa.Column('outer_pad', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('id = 1', name=op.f('ck_audit_ref_keys_single_row')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_ref_keys')),
    info={'scope': 'global'}
    )
    # the old guard refused every UPDATE; events written before this revision are sealed anew
    op.execute("DROP TRIGGER audit_events_append_only ON audit_events")
    op.execute("DROP TRIGGER audit_events_no_truncate ON audit_events")
    op.add_column('audit_events', sa.Column('retain_until', sa.Date(), nullable=True, comment="set on insert from the action's retention category"))
    op.alter_column('audit_events', 'seq',
               existing_type=sa.BIGINT(),
               nullable=True,
               comment='NULL until sealed')
    op.execute("ALTER TABLE audit_events NO FORCE ROW LEVEL SECURITY")  # the owner sees every row
    op.execute("UPDATE audit_events SET retain_until = (occurred_at AT TIME ZONE 'UTC')::date + interval '10 years', seq = NULL, prev_hash = NULL, hash = NULL")
    op.execute("ALTER TABLE audit_events FORCE ROW LEVEL SECURITY")
    op.alter_column('audit_events', 'retain_until', nullable=False)
    op.create_index(op.f('ix_audit_events_clinic_id_ip_address_occurred_at'), 'audit_events', ['clinic_id', 'ip_address', 'occurred_at'], unique=False)
    op.create_index('ix_audit_events_unsealed', 'audit_events', ['clinic_id', 'occurred_at', 'id'], unique=False, postgresql_where=sa.text('seq IS NULL'))
    # the key is written before row-level security is forced on its table
    op.execute(GENERATE_REF_KEY)
    _run(TABLES_SQL)
    _run(AUDIT_SQL)


def downgrade() -> None:
    for table in ("patients", "appointments", "consent_records", "disclosures",
                  "data_subject_requests", "professionals", "staff_users",
                  "clinic_memberships", "security_incidents"):
        op.execute(f"DROP TRIGGER IF EXISTS {table}_audit ON {table}")
    for trigger in ("audit_events_before_insert", "audit_events_guard", "audit_events_no_truncate"):
        op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON audit_events")
    op.execute("DROP POLICY IF EXISTS audit_events_owner ON audit_events")
    for function in ("neonpro_audit_seal(uuid, integer)", "neonpro_audit_unsealed_clinics()",
                     "neonpro_audit_row_change()", "neonpro_audit_guard()",
                     "neonpro_audit_before_insert()", "neonpro_patient_ref(uuid)",
                     "neonpro_audit_retention(text, text, text)",
                     "neonpro_audit_canonical(audit_events, bigint, bytea)",
                     "neonpro_lp(text)"):
        op.execute(f"DROP FUNCTION IF EXISTS {function}")
    op.drop_index('ix_audit_events_unsealed', table_name='audit_events', postgresql_where=sa.text('seq IS NULL'))
    op.drop_index(op.f('ix_audit_events_clinic_id_ip_address_occurred_at'), table_name='audit_events')
    # number the events again so the old NOT NULL holds (there was no chain before)
    op.execute("ALTER TABLE audit_events NO FORCE ROW LEVEL SECURITY")  # the owner sees every row
    op.execute("UPDATE audit_events e SET seq = n.rn FROM (SELECT clinic_id, id, row_number() OVER (PARTITION BY clinic_id ORDER BY occurred_at, id) AS rn FROM audit_events) n WHERE e.clinic_id = n.clinic_id AND e.id = n.id")
    op.execute("ALTER TABLE audit_events FORCE ROW LEVEL SECURITY")
    op.alter_column('audit_events', 'seq',
               existing_type=sa.BIGINT(),
               nullable=False,
               comment=None,
               existing_comment='NULL until sealed')
    op.drop_column('audit_events', 'retain_until')
    op.drop_table('audit_ref_keys')
    op.drop_table('audit_chain_cuts')
    op.execute("CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events FOR EACH ROW EXECUTE FUNCTION neonpro_refuse_change()")
    op.execute("CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events FOR EACH STATEMENT EXECUTE FUNCTION neonpro_refuse_change()")
