"""Binding a transaction's context (clinic, actor, role, session) and reading it back."""

from __future__ import annotations

from neonpro.adapters.db.audit_sql.names import CONTEXT_FIELDS, HMAC, KEY

# the transaction id a bound context is checked against: on a worker's part of a
# distributed transaction (started on another node), the coordinator's, sent with the
# settings as app.xid; on the node that started it, its own
DISTRIBUTED_XID = ("CASE WHEN (get_current_transaction_id()).initiator_node_identifier\n"
                   "      IS DISTINCT FROM (SELECT groupid FROM pg_dist_local_group)\n"
                   "    THEN NULLIF(current_setting('app.xid', true), '')::xid8\n"
                   "    ELSE pg_current_xact_id_if_assigned() END")


def context_functions() -> list[str]:
    """Binding the transaction's context, and reading it back verified."""
    return [_context_mac(), session_live(), _bind_context(), _session_context(),
            read_context()]


def distributed_context_functions() -> list[str]:
    """The binding and its check on a Citus cluster (``citus_sql``): the settings reach the
    shards and the binding is checked there too.

    ``set_config`` stays on the node that runs it, so a worker would see no clinic (its
    row-level security then shows nothing) and no context (its audit triggers refuse every
    change). Here the binding sets them with ``SET LOCAL`` (run inside the function, from
    the bound values: the client still sends them as bound parameters), which Citus sends
    on to every worker the transaction reaches (``citus.propagate_set_commands = local``),
    with the coordinator's transaction id as ``app.xid``. A worker's part of a distributed
    transaction has a transaction id of its own, so there the HMAC is checked against
    ``app.xid``; on the node that started the transaction, against its own id as before."""
    return [_bind_context(distributed=True), _session_context(distributed=True),
            read_context(distributed=True)]


def _context_mac() -> str:
    """The HMAC of a bound context and its transaction id (owner's key)."""
    mac_args = "p_xid text, " + ", ".join(f"p_{f} text" for f in CONTEXT_FIELDS)
    message = ("'neonpro-context-v1' || neonpro_lp(p_xid) || "
               + " || ".join(f"neonpro_lp(p_{f})" for f in CONTEXT_FIELDS))
    return f"""CREATE FUNCTION neonpro_context_mac({mac_args}) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT encode({HMAC.format(message=message)}, 'hex') {KEY}
$$"""


def session_live() -> str:
    """Whether a token's session is live and still matches its membership."""
    return """CREATE FUNCTION neonpro_session_live(p_token_id text, p_user_id uuid,
    p_clinic_id uuid, p_role text) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  -- a token's session: issued, not revoked, not expired, for this user, clinic and role;
  -- a signed-in one also needs the membership active in that role and the account active
  SELECT EXISTS (
    SELECT 1 FROM staff_sessions s
     WHERE s.token_id = p_token_id AND s.revoked_at IS NULL AND s.expires_at > now()
       AND s.user_id = p_user_id AND s.clinic_id = p_clinic_id AND s.role = p_role
       AND (s.kind = 'development' OR EXISTS (
         SELECT 1 FROM clinic_memberships m JOIN staff_users u ON u.id = m.user_id
          WHERE m.clinic_id = s.clinic_id AND m.user_id = s.user_id AND m.role = s.role
            AND m.is_active AND u.is_active)))
$$"""


def _bind_context(*, distributed: bool = False) -> str:
    """Setting the app.* settings once per transaction, with their HMAC."""
    args = ", ".join(f"p_{f} text" for f in CONTEXT_FIELDS)
    given = ", ".join(f"coalesce(p_{f}, '')" for f in CONTEXT_FIELDS)
    if distributed:
        sets = "EXECUTE 'SET LOCAL citus.propagate_set_commands = local';\n  " + "".join(
            f"EXECUTE format('SET LOCAL app.{f} = %L', coalesce(p_{f}, ''));\n  "
            for f in CONTEXT_FIELDS) + (
            "EXECUTE format('SET LOCAL app.xid = %L', pg_current_xact_id()::text);\n  "
            "EXECUTE format('SET LOCAL app.context = %L', neonpro_context_mac("
            f"pg_current_xact_id()::text, {given}));")
    else:
        sets = "PERFORM " + ",\n    ".join(
            f"set_config('app.{f}', coalesce(p_{f}, ''), true)" for f in CONTEXT_FIELDS) + (
            ",\n    set_config('app.context', neonpro_context_mac("
            f"pg_current_xact_id()::text, {given}), true);")
    return f"""CREATE FUNCTION neonpro_bind_context({args}) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  -- once per transaction, as its first statement: the transaction id it is bound to is
  -- assigned here, so a second call (after SQL switched a setting) finds one and stops
  IF pg_current_xact_id_if_assigned() IS NOT NULL THEN
    RAISE EXCEPTION 'a transaction''s context is bound once, by its first statement'
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  PERFORM NULLIF(p_clinic_id, '')::uuid, NULLIF(p_actor_id, '')::uuid, NULLIF(p_ip, '')::inet;
  -- a token's transactions: its session must be live and still match its membership
  -- (signed out, expired, revoked, the role changed or the membership removed: refused)
  IF coalesce(p_session_id, '') <> '' AND NOT neonpro_session_live(
      p_session_id, NULLIF(p_actor_id, '')::uuid, NULLIF(p_clinic_id, '')::uuid,
      p_actor_role) THEN
    RAISE EXCEPTION 'the session is signed out, expired or revoked'
      USING ERRCODE = 'invalid_authorization_specification';
  END IF;
  {sets}
END
$$"""


def read_context(*, distributed: bool = False) -> str:
    """The settings of a read-only transaction, unbound: it writes nothing, so no audit
    event asks for a binding, and a standby could not give the transaction id one needs.
    Run as its caller (it sets only what the caller may set itself); on Citus with
    ``SET LOCAL``, so the clinic reaches the workers' row-level security."""
    args = ", ".join(f"p_{f} text" for f in CONTEXT_FIELDS)
    if distributed:
        sets = "EXECUTE 'SET LOCAL citus.propagate_set_commands = local';\n  " + "\n  ".join(
            f"EXECUTE format('SET LOCAL app.{f} = %L', coalesce(p_{f}, ''));"
            for f in CONTEXT_FIELDS)
    else:
        sets = "PERFORM " + ",\n    ".join(
            f"set_config('app.{f}', coalesce(p_{f}, ''), true)" for f in CONTEXT_FIELDS) + ";"
    return f"""CREATE FUNCTION neonpro_read_context({args}) RETURNS void
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
BEGIN
  {sets}
END
$$"""


def _session_context(*, distributed: bool = False) -> str:
    """The transaction's bound context, refused unless its HMAC verifies."""
    current = ", ".join(f"coalesce(current_setting('app.{f}', true), '')"
                        for f in CONTEXT_FIELDS)
    xid = DISTRIBUTED_XID if distributed else "pg_current_xact_id_if_assigned()"
    return f"""CREATE FUNCTION neonpro_session_context(OUT clinic_id uuid, OUT actor_id uuid,
    OUT actor_role text, OUT request_id text, OUT ip inet, OUT user_agent text,
    OUT session_id text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  v_xid xid8 := {xid};
BEGIN
  IF v_xid IS NULL OR coalesce(current_setting('app.context', true), '')
      <> neonpro_context_mac(v_xid::text, {current}) THEN
    RAISE EXCEPTION 'the transaction''s context (clinic, actor, role) is not the one its '
      'first statement bound (neonpro_bind_context), or was changed since'
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  clinic_id := NULLIF(current_setting('app.clinic_id', true), '')::uuid;
  actor_id := NULLIF(current_setting('app.actor_id', true), '')::uuid;
  actor_role := NULLIF(current_setting('app.actor_role', true), '');
  request_id := NULLIF(current_setting('app.request_id', true), '');
  ip := NULLIF(current_setting('app.ip', true), '')::inet;
  user_agent := NULLIF(current_setting('app.user_agent', true), '');
  session_id := NULLIF(current_setting('app.session_id', true), '');
END
$$"""
