"""read-only transactions' context through a function, so that on Citus it reaches the
workers

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05 08:00:00+00:00

A read-only transaction (a standby's reads) sets the ``app.*`` settings unbound: it writes
no audit event and a standby cannot give the transaction id a binding needs. It set them
with ``set_config``, which on Citus stays on the coordinator: the workers' row-level
security then saw no clinic and the transaction read nothing. ``neonpro_read_context`` sets
them with ``set_config`` on one server and with ``SET LOCAL`` (sent on to the workers) on a
Citus database (``audit_sql.context.read_context``), run as its caller.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op
from sqlalchemy import text

revision: str = '0019'
down_revision: str | Sequence[str] | None = '0018'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CITUS = "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')"
# frozen copies of audit_sql.context.read_context at this revision
EVERY_SERVER_SQL = "CREATE FUNCTION neonpro_read_context(p_clinic_id text, p_actor_id text, p_actor_role text, p_request_id text, p_ip text, p_user_agent text, p_session_id text) RETURNS void\nLANGUAGE plpgsql SET search_path = public, pg_temp AS $$\nBEGIN\n  PERFORM set_config('app.clinic_id', coalesce(p_clinic_id, ''), true),\n    set_config('app.actor_id', coalesce(p_actor_id, ''), true),\n    set_config('app.actor_role', coalesce(p_actor_role, ''), true),\n    set_config('app.request_id', coalesce(p_request_id, ''), true),\n    set_config('app.ip', coalesce(p_ip, ''), true),\n    set_config('app.user_agent', coalesce(p_user_agent, ''), true),\n    set_config('app.session_id', coalesce(p_session_id, ''), true);\nEND\n$$"
CITUS_SQL = "CREATE OR REPLACE FUNCTION neonpro_read_context(p_clinic_id text, p_actor_id text, p_actor_role text, p_request_id text, p_ip text, p_user_agent text, p_session_id text) RETURNS void\nLANGUAGE plpgsql SET search_path = public, pg_temp AS $$\nBEGIN\n  EXECUTE 'SET LOCAL citus.propagate_set_commands = local';\n  EXECUTE format('SET LOCAL app.clinic_id = %L', coalesce(p_clinic_id, ''));\n  EXECUTE format('SET LOCAL app.actor_id = %L', coalesce(p_actor_id, ''));\n  EXECUTE format('SET LOCAL app.actor_role = %L', coalesce(p_actor_role, ''));\n  EXECUTE format('SET LOCAL app.request_id = %L', coalesce(p_request_id, ''));\n  EXECUTE format('SET LOCAL app.ip = %L', coalesce(p_ip, ''));\n  EXECUTE format('SET LOCAL app.user_agent = %L', coalesce(p_user_agent, ''));\n  EXECUTE format('SET LOCAL app.session_id = %L', coalesce(p_session_id, ''));\nEND\n$$"


def upgrade() -> None:
    op.execute(EVERY_SERVER_SQL)
    if op.get_bind().execute(text(CITUS)).scalar():
        op.execute(CITUS_SQL)


def downgrade() -> None:
    op.execute("DROP FUNCTION neonpro_read_context(text, text, text, text, text, text, text)")
