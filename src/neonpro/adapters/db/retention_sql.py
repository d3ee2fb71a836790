"""Retention policies keep their history, enforced by the database.

Part of the expected DDL (see ``security.py``); migration 0013 carries a frozen copy. A
policy row is never deleted nor changed: the one UPDATE allowed is its retirement, which
sets ``retired_at`` and ``retired_by`` once and leaves everything else as it was (bookkeeping
``updated_at`` aside). Every role is held to it, owner included (``ENABLE ALWAYS``); the
error names ``retention_policies_history_guard`` (SQLSTATE 42501).
"""

from __future__ import annotations

GUARD = "retention_policies_history_guard"


def retention_ddl() -> list[str]:
    return [
        f"""CREATE FUNCTION neonpro_retention_policy_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND OLD.retired_at IS NULL AND NEW.retired_at IS NOT NULL
     AND NEW.retired_by IS NOT NULL
     AND (to_jsonb(NEW) - ARRAY['retired_at', 'retired_by', 'updated_at'])
       = (to_jsonb(OLD) - ARRAY['retired_at', 'retired_by', 'updated_at']) THEN
    RETURN NEW;  -- retiring: once, nothing else changes
  END IF;
  RAISE EXCEPTION 'retention policies keep their history: a policy is retired, never '
    'changed or deleted (% refused)', TG_OP
    USING ERRCODE = 'insufficient_privilege', CONSTRAINT = '{GUARD}';
END
$$""",
        f"CREATE TRIGGER {GUARD} BEFORE UPDATE OR DELETE ON retention_policies "
        "FOR EACH ROW EXECUTE FUNCTION neonpro_retention_policy_guard()",
        "CREATE TRIGGER retention_policies_no_truncate BEFORE TRUNCATE ON retention_policies "
        "FOR EACH STATEMENT EXECUTE FUNCTION neonpro_refuse_change()",
        f"ALTER TABLE retention_policies ENABLE ALWAYS TRIGGER {GUARD}",
        "ALTER TABLE retention_policies ENABLE ALWAYS TRIGGER retention_policies_no_truncate",
    ]
