"""sign-in throttling and sessions: tokens are revocable, guesses are throttled

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 18:00:00+00:00

* ``login_throttle`` and ``login_trusted`` (service role only): failed sign-ins counted per
  address, per e-mail and per pair, keyed by HMACs (never the address or the e-mail), and
  the pairs that signed in before (docs/security.md).
* ``staff_sessions`` (service role only): one row per token issued. ``neonpro_bind_context``
  now refuses a transaction whose token's session is signed out, expired, revoked, or no
  longer matches an active membership in that role (SQLSTATE 28000): signing out, a
  password change, a membership removed take effect on the next request. The owner reads
  memberships and accounts for that check (SELECT policies for the owner).
* ``staff_users`` loses ``failed_login_count`` and ``locked_until``: an account-wide lock
  let any stranger keep a user out; throttling replaced it.

Tokens issued before this revision have no session and are refused: sign in again.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from neonpro.adapters.db.migrations import migration_roles

revision: str = '0015'
down_revision: str | Sequence[str] | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# frozen copies of models/signin.py, security.py and audit_sql.py at this revision;
# {owner}, {app}, {service}, {legal_hold} are role names
UPGRADE_SQL: tuple[str, ...] = (
    "CREATE TABLE login_throttle (\n  scope TEXT NOT NULL,\n  key BYTEA NOT NULL,\n  failures INTEGER DEFAULT 0 NOT NULL,\n  strikes INTEGER DEFAULT 0 NOT NULL,\n  window_started_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,\n  blocked_until TIMESTAMP WITH TIME ZONE,\n  updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,\n  CONSTRAINT pk_login_throttle PRIMARY KEY (scope, key),\n  CONSTRAINT ck_login_throttle_scope CHECK (scope IN ('address', 'account', 'pair')),\n  CONSTRAINT ck_login_throttle_failures_non_negative CHECK (failures >= 0),\n  CONSTRAINT ck_login_throttle_strikes_non_negative CHECK (strikes >= 0)\n)",
    'CREATE INDEX ix_login_throttle_updated_at ON login_throttle (updated_at)',
    "COMMENT ON COLUMN login_throttle.key IS 'HMAC-SHA256 (blind-index key) of the address, the e-mail or both; never the value'",
    "COMMENT ON COLUMN login_throttle.failures IS 'attempts counted in the current window'",
    "COMMENT ON COLUMN login_throttle.strikes IS 'blocks so far: each doubles the next one'",
    'CREATE TABLE login_trusted (\n  pair BYTEA NOT NULL,\n  last_success_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,\n  CONSTRAINT pk_login_trusted PRIMARY KEY (pair)\n)',
    'CREATE INDEX ix_login_trusted_last_success_at ON login_trusted (last_success_at)',
    "COMMENT ON COLUMN login_trusted.pair IS 'HMAC-SHA256 (blind-index key) of the address and the e-mail'",
    "CREATE TABLE staff_sessions (\n  token_id TEXT NOT NULL,\n  user_id UUID NOT NULL,\n  clinic_id UUID NOT NULL,\n  role TEXT NOT NULL,\n  kind TEXT NOT NULL,\n  issued_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,\n  expires_at TIMESTAMP WITH TIME ZONE NOT NULL,\n  revoked_at TIMESTAMP WITH TIME ZONE,\n  revoked_reason TEXT,\n  CONSTRAINT pk_staff_sessions PRIMARY KEY (token_id),\n  CONSTRAINT ck_staff_sessions_role_valid CHECK (role IN ('admin', 'professional', 'receptionist', 'dpo')),\n  CONSTRAINT ck_staff_sessions_kind CHECK (kind IN ('login', 'development'))\n)",
    'CREATE INDEX ix_staff_sessions_user_id ON staff_sessions (user_id)',
    'CREATE INDEX ix_staff_sessions_expires_at ON staff_sessions (expires_at)',
    "COMMENT ON COLUMN staff_sessions.token_id IS 'the token''s jti'",
    "COMMENT ON COLUMN staff_sessions.user_id IS 'staff user (a development token may name none); no FK on purpose'",
    "COMMENT ON COLUMN staff_sessions.clinic_id IS 'checked when the token is issued; no FK on purpose'",
    "COMMENT ON COLUMN staff_sessions.revoked_reason IS 'logout, password_changed, membership_removed, ...'",
    'ALTER TABLE login_throttle ENABLE ROW LEVEL SECURITY',
    'ALTER TABLE login_throttle FORCE ROW LEVEL SECURITY',
    'REVOKE ALL ON login_throttle FROM PUBLIC',
    'GRANT SELECT, INSERT, UPDATE, DELETE ON login_throttle TO {service}',
    'CREATE TRIGGER login_throttle_touch_updated_at BEFORE UPDATE ON login_throttle FOR EACH ROW EXECUTE FUNCTION neonpro_touch_updated_at()',
    'ALTER TABLE login_trusted ENABLE ROW LEVEL SECURITY',
    'ALTER TABLE login_trusted FORCE ROW LEVEL SECURITY',
    'REVOKE ALL ON login_trusted FROM PUBLIC',
    'GRANT SELECT, INSERT, UPDATE, DELETE ON login_trusted TO {service}',
    'ALTER TABLE staff_sessions ENABLE ROW LEVEL SECURITY',
    'ALTER TABLE staff_sessions FORCE ROW LEVEL SECURITY',
    'REVOKE ALL ON staff_sessions FROM PUBLIC',
    'GRANT SELECT, INSERT, UPDATE, DELETE ON staff_sessions TO {service}',
    'CREATE POLICY staff_sessions_owner ON staff_sessions AS PERMISSIVE FOR SELECT TO {owner} USING (true)',
    'CREATE POLICY clinic_memberships_owner ON clinic_memberships AS PERMISSIVE FOR SELECT TO {owner} USING (true)',
    'CREATE POLICY staff_users_owner ON staff_users AS PERMISSIVE FOR SELECT TO {owner} USING (true)',
    "CREATE FUNCTION neonpro_session_live(p_token_id text, p_user_id uuid,\n    p_clinic_id uuid, p_role text) RETURNS boolean\nLANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$\n  -- a token's session: issued, not revoked, not expired, for this user, clinic and role;\n  -- a signed-in one also needs the membership active in that role and the account active\n  SELECT EXISTS (\n    SELECT 1 FROM staff_sessions s\n     WHERE s.token_id = p_token_id AND s.revoked_at IS NULL AND s.expires_at > now()\n       AND s.user_id = p_user_id AND s.clinic_id = p_clinic_id AND s.role = p_role\n       AND (s.kind = 'development' OR EXISTS (\n         SELECT 1 FROM clinic_memberships m JOIN staff_users u ON u.id = m.user_id\n          WHERE m.clinic_id = s.clinic_id AND m.user_id = s.user_id AND m.role = s.role\n            AND m.is_active AND u.is_active)))\n$$",
    'REVOKE ALL ON FUNCTION neonpro_session_live(text, uuid, uuid, text) FROM PUBLIC',
    'GRANT EXECUTE ON FUNCTION neonpro_session_live(text, uuid, uuid, text) TO {service}',
    "CREATE OR REPLACE FUNCTION neonpro_bind_context(p_clinic_id text, p_actor_id text, p_actor_role text, p_request_id text, p_ip text, p_user_agent text, p_session_id text) RETURNS void\nLANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$\nBEGIN\n  -- once per transaction, as its first statement: the transaction id it is bound to is\n  -- assigned here, so a second call (after SQL switched a setting) finds one and stops\n  IF pg_current_xact_id_if_assigned() IS NOT NULL THEN\n    RAISE EXCEPTION 'a transaction''s context is bound once, by its first statement'\n      USING ERRCODE = 'insufficient_privilege';\n  END IF;\n  PERFORM NULLIF(p_clinic_id, '')::uuid, NULLIF(p_actor_id, '')::uuid, NULLIF(p_ip, '')::inet;\n  -- a token's transactions: its session must be live and still match its membership\n  -- (signed out, expired, revoked, the role changed or the membership removed: refused)\n  IF coalesce(p_session_id, '') <> '' AND NOT neonpro_session_live(\n      p_session_id, NULLIF(p_actor_id, '')::uuid, NULLIF(p_clinic_id, '')::uuid,\n      p_actor_role) THEN\n    RAISE EXCEPTION 'the session is signed out, expired or revoked'\n      USING ERRCODE = 'invalid_authorization_specification';\n  END IF;\n  PERFORM set_config('app.clinic_id', coalesce(p_clinic_id, ''), true),\n    set_config('app.actor_id', coalesce(p_actor_id, ''), true),\n    set_config('app.actor_role', coalesce(p_actor_role, ''), true),\n    set_config('app.request_id', coalesce(p_request_id, ''), true),\n    set_config('app.ip', coalesce(p_ip, ''), true),\n    set_config('app.user_agent', coalesce(p_user_agent, ''), true),\n    set_config('app.session_id', coalesce(p_session_id, ''), true),\n    set_config('app.context', neonpro_context_mac(pg_current_xact_id()::text, coalesce(p_clinic_id, ''), coalesce(p_actor_id, ''), coalesce(p_actor_role, ''), coalesce(p_request_id, ''), coalesce(p_ip, ''), coalesce(p_user_agent, ''), coalesce(p_session_id, '')), true);\nEND\n$$",
)
# the binding of revision 0011, then the new tables dropped
DOWNGRADE_SQL: tuple[str, ...] = (
    "CREATE OR REPLACE FUNCTION neonpro_bind_context(p_clinic_id text, p_actor_id text, p_actor_role text, p_request_id text, p_ip text, p_user_agent text, p_session_id text) RETURNS void\nLANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$\nBEGIN\n  -- once per transaction, as its first statement: the transaction id it is bound to is\n  -- assigned here, so a second call (after SQL switched a setting) finds one and stops\n  IF pg_current_xact_id_if_assigned() IS NOT NULL THEN\n    RAISE EXCEPTION 'a transaction''s context is bound once, by its first statement'\n      USING ERRCODE = 'insufficient_privilege';\n  END IF;\n  PERFORM NULLIF(p_clinic_id, '')::uuid, NULLIF(p_actor_id, '')::uuid, NULLIF(p_ip, '')::inet;\n  PERFORM set_config('app.clinic_id', coalesce(p_clinic_id, ''), true),\n    set_config('app.actor_id', coalesce(p_actor_id, ''), true),\n    set_config('app.actor_role', coalesce(p_actor_role, ''), true),\n    set_config('app.request_id', coalesce(p_request_id, ''), true),\n    set_config('app.ip', coalesce(p_ip, ''), true),\n    set_config('app.user_agent', coalesce(p_user_agent, ''), true),\n    set_config('app.session_id', coalesce(p_session_id, ''), true),\n    set_config('app.context', neonpro_context_mac(pg_current_xact_id()::text, coalesce(p_clinic_id, ''), coalesce(p_actor_id, ''), coalesce(p_actor_role, ''), coalesce(p_request_id, ''), coalesce(p_ip, ''), coalesce(p_user_agent, ''), coalesce(p_session_id, '')), true);\nEND\n$$",
    'DROP FUNCTION IF EXISTS neonpro_session_live(text, uuid, uuid, text)',
    'DROP POLICY IF EXISTS clinic_memberships_owner ON clinic_memberships',
    'DROP POLICY IF EXISTS staff_users_owner ON staff_users',
    'DROP TABLE IF EXISTS staff_sessions',
    'DROP TABLE IF EXISTS login_trusted',
    'DROP TABLE IF EXISTS login_throttle',
)


def _run(statements: tuple[str, ...]) -> None:
    roles = migration_roles()
    for statement in statements:
        op.execute(statement.replace("{owner}", roles.owner).replace("{app}", roles.app)
                   .replace("{service}", roles.service)
                   .replace("{legal_hold}", roles.legal_hold))


def upgrade() -> None:
    _run(UPGRADE_SQL)
    op.drop_constraint(op.f('ck_staff_users_failed_login_count_non_negative'),
                       'staff_users', type_='check')
    op.drop_column('staff_users', 'failed_login_count')
    op.drop_column('staff_users', 'locked_until')


def downgrade() -> None:
    op.add_column('staff_users', sa.Column('locked_until', sa.DateTime(timezone=True),
                                           nullable=True))
    op.add_column('staff_users', sa.Column('failed_login_count', sa.Integer(),
                                           server_default=sa.text('0'), nullable=False))
    op.create_check_constraint(op.f('ck_staff_users_failed_login_count_non_negative'),
                               'staff_users', 'failed_login_count >= 0')
    _run(DOWNGRADE_SQL)
