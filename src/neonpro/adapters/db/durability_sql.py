"""Commit tokens in SQL: what a transaction writes just before COMMIT, and how another
connection finds out afterwards whether it committed.

Part of the expected DDL (see ``security.py``); migrations carry frozen copies.

The application role may insert tokens but never read them, so the lookup goes through
``neonpro_commit_token_exists``, a SECURITY DEFINER function that answers one question
about one random token: it tells nothing to whoever does not already hold the token. The
owner, who runs it, reads ``commit_tokens`` through its own policy (row-level security is
forced on the owner too).
"""

from __future__ import annotations

from sqlalchemy import text

from neonpro.adapters.db.security import Roles

# The statement a transaction runs just before COMMIT. Every unit of work's transaction has
# an id (neonpro_bind_context assigns it), so the token cannot tell a read from a write and
# always goes in; reads the API retries whole skip this statement (UnitOfWork._commit).
# A plain VALUES insert: Citus routes it to the clinic's shard (an INSERT ... SELECT with a
# function in it is run through the coordinator, which row-level security refuses).
_ADD = "INSERT INTO commit_tokens (clinic_id, token) VALUES (:clinic, :token)"
# With an idempotency key, the same transaction also marks the key's work as committed, so
# the key can never disagree with the work; no row marked: another attempt took the key over.
_MARK = ("UPDATE idempotency_keys SET state = 'committed', "
         "request_id = NULLIF(current_setting('app.request_id', true), '') "
         "WHERE clinic_id = :key_clinic AND key_hash = :key_hash AND claim = :claim "
         "AND state <> 'done' RETURNING 1")
_ADD_MARKED = ("INSERT INTO commit_tokens (clinic_id, token) SELECT :clinic, :token "
               "WHERE EXISTS (SELECT 1 FROM marked)")

PRE_COMMIT = text(_ADD)
PRE_COMMIT_MARKED = text(f"WITH marked AS ({_MARK}) {_ADD_MARKED}")

LOOKUP_SQL = "SELECT neonpro_commit_token_exists(%s, %s)"
# who the original connection was, and what it is doing now (None: it is gone)
BACKEND_NOW = ("SELECT pg_postmaster_start_time(), (SELECT coalesce(a.state, 'unknown') "
               "FROM pg_stat_activity a WHERE a.pid = %s AND a.backend_start = %s)")
BACKEND_IDENTITY = ("SELECT pg_backend_pid(), backend_start, pg_postmaster_start_time() "
                    "FROM pg_stat_activity WHERE pid = pg_backend_pid()")
TERMINATE = "SELECT pg_terminate_backend(%s, 2000)"
PRUNE_TOKENS = text("DELETE FROM commit_tokens WHERE committed_at < now() - make_interval("
                    "mins => :minutes)")


COMMIT_TOKEN_EXISTS = """CREATE FUNCTION neonpro_commit_token_exists(p_clinic uuid, p_token uuid)
RETURNS boolean LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT EXISTS (SELECT 1 FROM commit_tokens WHERE clinic_id = p_clinic AND token = p_token)
$$"""  # noqa: S105  (a function's text, no password)


def durability_ddl(roles: Roles) -> list[str]:
    """The owner's read policy on commit tokens and the lookup function."""
    return [
        f"CREATE POLICY commit_tokens_owner ON commit_tokens AS PERMISSIVE FOR SELECT "
        f"TO {roles.owner} USING (true)",
        COMMIT_TOKEN_EXISTS,
        "REVOKE ALL ON FUNCTION neonpro_commit_token_exists(uuid, uuid) FROM PUBLIC",
        f"GRANT EXECUTE ON FUNCTION neonpro_commit_token_exists(uuid, uuid) "
        f"TO {roles.app}, {roles.service}",
    ]
