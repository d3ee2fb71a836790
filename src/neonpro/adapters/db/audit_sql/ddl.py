"""The audit trail's expected DDL in order: functions, grants, owner policies, triggers."""

from __future__ import annotations

from neonpro.adapters.db.audit_sql.chain import audit_prune, chain_functions
from neonpro.adapters.db.audit_sql.context import context_functions
from neonpro.adapters.db.audit_sql.names import AUDITED_TABLES
from neonpro.adapters.db.audit_sql.triggers import (
    audit_before_insert,
    audit_retention,
    audit_row_change,
    ledger_guard,
    length_prefixed,
    patient_ref,
    remove_consent_evidence,
)
from neonpro.adapters.db.security import GUARDED_TABLES, Roles


def _functions(roles: Roles) -> list[str]:
    return [
        length_prefixed(),
        audit_retention(),
        patient_ref(),
        *context_functions(),
        audit_before_insert(),
        ledger_guard(),
        audit_row_change(),
        *chain_functions(),
        audit_prune(),
        remove_consent_evidence(),
        *_grants(roles),
    ]


def _grants(roles: Roles) -> list[str]:
    """Who may call the SECURITY DEFINER functions: nobody but the roles named."""
    return [
        "REVOKE ALL ON FUNCTION neonpro_patient_ref(uuid) FROM PUBLIC",
        f"REVOKE ALL ON FUNCTION neonpro_context_mac({_args(8)}) FROM PUBLIC",
        f"REVOKE ALL ON FUNCTION neonpro_bind_context({_args(7)}) FROM PUBLIC",
        "REVOKE ALL ON FUNCTION neonpro_session_live(text, uuid, uuid, text) FROM PUBLIC",
        "GRANT EXECUTE ON FUNCTION neonpro_session_live(text, uuid, uuid, text) TO "
        f"{roles.service}",
        "REVOKE ALL ON FUNCTION neonpro_session_context() FROM PUBLIC",
        "REVOKE ALL ON FUNCTION neonpro_chain_head(text, uuid) FROM PUBLIC",
        "REVOKE ALL ON FUNCTION neonpro_chain_seal(text, uuid, bigint, bytea, text, uuid[], "
        "bytea[]) FROM PUBLIC",
        "REVOKE ALL ON FUNCTION neonpro_audit_prune(uuid, bigint, bytea, text, text, text) "
        "FROM PUBLIC",
        "REVOKE ALL ON FUNCTION neonpro_remove_consent_evidence(uuid[], uuid[], text) FROM PUBLIC",
        f"GRANT EXECUTE ON FUNCTION neonpro_patient_ref(uuid) TO {roles.app}, {roles.service}",
        f"GRANT EXECUTE ON FUNCTION neonpro_bind_context({_args(7)}) TO {roles.app}, "
        f"{roles.service}, {roles.legal_hold}",
        f"GRANT EXECUTE ON FUNCTION neonpro_session_context() TO {roles.app}, {roles.service}",
        f"GRANT EXECUTE ON FUNCTION neonpro_chain_head(text, uuid) TO {roles.service}",
        "GRANT EXECUTE ON FUNCTION neonpro_chain_seal(text, uuid, bigint, bytea, text, uuid[], "
        f"bytea[]) TO {roles.service}",
        "GRANT EXECUTE ON FUNCTION neonpro_audit_prune(uuid, bigint, bytea, text, text, text) "
        f"TO {roles.service}",
        "GRANT EXECUTE ON FUNCTION neonpro_remove_consent_evidence(uuid[], uuid[], text) "
        f"TO {roles.service}",
    ]


def _args(n: int) -> str:
    return ", ".join(["text"] * n)


def ledger_ddl() -> list[str]:
    """Guard triggers of every ledger: no UPDATE, DELETE or TRUNCATE, whoever runs it.

    ``ENABLE ALWAYS``: they fire under ``session_replication_role = replica`` too (a
    superuser's way around ordinary triggers); only disabling them (owner, superuser) or a
    superuser's direct catalog surgery gets past them, and ``verify`` covers the chains."""
    out: list[str] = []
    for table in GUARDED_TABLES:
        guard, stop = f"{table}_guard", f"{table}_no_truncate"
        out += [
            f"CREATE TRIGGER {guard} BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION neonpro_ledger_guard()",
            f"CREATE TRIGGER {stop} BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION neonpro_refuse_change()",
            f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {guard}",
            f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {stop}",
        ]
    return out


def audit_ddl(roles: Roles) -> list[str]:
    """Functions, owner policies and triggers of the audit trail (after the tables exist)."""
    out = _functions(roles)
    out += [
        # the sealer and the row triggers (SECURITY DEFINER parts) act as the owner, whom
        # FORCE ROW LEVEL SECURITY would otherwise show nothing
        f"CREATE POLICY audit_events_owner ON audit_events AS PERMISSIVE FOR ALL "
        f"TO {roles.owner} USING (true) WITH CHECK (true)",
        f"CREATE POLICY audit_chain_cuts_owner ON audit_chain_cuts AS PERMISSIVE FOR ALL "
        f"TO {roles.owner} USING (true) WITH CHECK (true)",
        f"CREATE POLICY audit_ref_keys_owner ON audit_ref_keys AS PERMISSIVE FOR SELECT "
        f"TO {roles.owner} USING (true)",
        f"CREATE POLICY erasure_ledger_owner ON erasure_ledger AS PERMISSIVE FOR ALL "
        f"TO {roles.owner} USING (true) WITH CHECK (true)",
        f"CREATE POLICY consent_records_owner ON consent_records AS PERMISSIVE FOR ALL "
        f"TO {roles.owner} USING (true) WITH CHECK (true)",
        f"CREATE POLICY disclosures_owner ON disclosures AS PERMISSIVE FOR ALL "
        f"TO {roles.owner} USING (true) WITH CHECK (true)",
        f"CREATE POLICY audit_chain_anchors_owner ON audit_chain_anchors AS PERMISSIVE FOR ALL "
        f"TO {roles.owner} USING (true) WITH CHECK (true)",
        # neonpro_bind_context checks a token's session against its membership
        f"CREATE POLICY staff_sessions_owner ON staff_sessions AS PERMISSIVE FOR SELECT "
        f"TO {roles.owner} USING (true)",
        f"CREATE POLICY clinic_memberships_owner ON clinic_memberships AS PERMISSIVE "
        f"FOR SELECT TO {roles.owner} USING (true)",
        f"CREATE POLICY staff_users_owner ON staff_users AS PERMISSIVE FOR SELECT "
        f"TO {roles.owner} USING (true)",
        "CREATE TRIGGER audit_events_before_insert BEFORE INSERT ON audit_events "
        "FOR EACH ROW EXECUTE FUNCTION neonpro_audit_before_insert()",
    ]
    out += ledger_ddl()
    out += [
        f"CREATE TRIGGER {t}_audit AFTER INSERT OR UPDATE OR DELETE ON {t} "
        "FOR EACH ROW EXECUTE FUNCTION neonpro_audit_row_change()"
        for t in AUDITED_TABLES
    ]
    return out


# Run once by the migration that creates audit_ref_keys (before RLS is forced on it).
GENERATE_REF_KEY = """
DO $key$
DECLARE
  k bytea := decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex')
             || decode(repeat('00', 32), 'hex');
  i bytea := k;
  o bytea := k;
BEGIN
  FOR n IN 0..63 LOOP
    i := set_byte(i, n, get_byte(k, n) # 54);
    o := set_byte(o, n, get_byte(k, n) # 92);
  END LOOP;
  INSERT INTO audit_ref_keys (id, inner_pad, outer_pad) VALUES (1, i, o);
END
$key$
"""
