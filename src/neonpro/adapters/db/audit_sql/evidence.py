"""Removing consent evidence on a Citus cluster, where a SECURITY DEFINER function cannot
write a ledger the caller's transaction has already written (``citus_sql``).

On one server ``neonpro_remove_consent_evidence`` runs as the owner, and the ledger guard
lets the owner (and nobody else) replace a consent's evidence by ``{"removed": reason}``.
On Citus the coordinator reaches a shard through one connection per user: once the service
role has changed a clinic's rows (erasure anonymizes the patient first), a statement run as
the owner on that clinic's shards is refused ("placements that were modified in this
transaction by a different user"). So on Citus:

* ``neonpro_allow_evidence_removal(reason)`` (SECURITY DEFINER, the service role only)
  checks the reason and the bound clinic and sets ``app.evidence_removal`` to an HMAC, with
  the owner's key, of the transaction id, the clinic and the reason, with ``SET LOCAL``
  (which Citus sends on to the workers);
* ``neonpro_remove_consent_evidence`` runs as its caller: it asks for that grant, updates
  the consent rows, clears the grant, and records the event;
* the ledger guard, on the worker holding the shard, lets an UPDATE through only if it
  replaces the evidence and nothing else, by the reason granted, in the clinic granted, in
  this transaction (``neonpro_evidence_removal_allowed``; the key never leaves the owner).

Against SQL running as the service role this is what one server gives: it may remove the
evidence of its clinic's consents (it may call the function on any of them there too),
each row change audited, and change nothing else in the ledger. SQL as the application
role cannot ask for the grant, and a grant of another transaction or clinic, or a forged
one, does not verify.
"""

from __future__ import annotations

from neonpro.adapters.db.audit_sql.context import DISTRIBUTED_XID
from neonpro.adapters.db.audit_sql.names import EVIDENCE_REMOVED, HMAC, KEY, LP
from neonpro.adapters.db.audit_sql.triggers import (
    EVIDENCE_CHECKS,
    OWNER_REMOVES,
    ledger_guard,
    remove_consent_evidence,
)

GRANT = "app.evidence_removal"
_EMPTY = "''''"  # an empty string, inside a quoted SQL string
_REASONS = ", ".join(f"'{r}'" for r in EVIDENCE_REMOVED)


def evidence_removal_on_citus() -> list[str]:
    """The functions of the module's docstring, and who may call them ({service}: the
    service role's name, filled in by the caller)."""
    return [
        _MAC, _ALLOWED, _ALLOW, _remove(),
        "REVOKE ALL ON FUNCTION neonpro_evidence_mac(text, text, text) FROM PUBLIC",
        "REVOKE ALL ON FUNCTION neonpro_allow_evidence_removal(text) FROM PUBLIC",
        "GRANT EXECUTE ON FUNCTION neonpro_allow_evidence_removal(text) TO {service}",
        # the service role may write that one column, as the guard lets it (on one server it
        # has no UPDATE on the ledger at all: the owner's function writes it)
        "GRANT UPDATE (evidence) ON consent_records TO {service}",
    ]


def granted_ledger_guard() -> str:
    """The ledger guard, an evidence removal let through when this transaction was granted
    it (rather than when the owner runs it)."""
    return ledger_guard().replace(OWNER_REMOVES, (
        "neonpro_evidence_removal_allowed((v_new ->> 'clinic_id')::uuid,\n"
        "         v_new -> 'evidence' ->> 'removed')"))


def _remove() -> str:
    """neonpro_remove_consent_evidence run as its caller, with the grant, the rows' clinic
    named where it writes the event (Citus routes an insert by that value)."""
    return remove_consent_evidence().replace(
        "CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1).replace(
        "SECURITY DEFINER", "SECURITY INVOKER", 1).replace(
        "(SELECT clinic_id FROM neonpro_session_context())",
        "neonpro_allow_evidence_removal(p_reason)", 1).replace(
        EVIDENCE_CHECKS, "", 1).replace(
        "  GET DIAGNOSTICS v_count = ROW_COUNT;\n",
        "  GET DIAGNOSTICS v_count = ROW_COUNT;\n"
        f"  EXECUTE 'SET LOCAL {GRANT} = {_EMPTY}';\n", 1
    ).replace(
        "INSERT INTO audit_events (action, resource_type, risk_level, details)\n    VALUES (",
        "INSERT INTO audit_events (clinic_id, action, resource_type, risk_level, details)\n"
        "    VALUES (v_clinic, ", 1)


_MAC = f"""CREATE OR REPLACE FUNCTION neonpro_evidence_mac(p_xid text, p_clinic text,
    p_reason text) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
SET citus.allow_nested_distributed_execution = on AS $$
  SELECT encode({HMAC.format(message=(
      f"'neonpro-evidence-removal-v1' || {LP}(p_xid) || {LP}(p_clinic) || {LP}(p_reason)"))},
    'hex') {KEY}
$$"""

_ALLOWED = f"""CREATE OR REPLACE FUNCTION neonpro_evidence_removal_allowed(p_clinic uuid,
    p_reason text) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  v_xid xid8 := {DISTRIBUTED_XID};
BEGIN
  RETURN v_xid IS NOT NULL AND p_clinic IS NOT NULL AND p_reason IN ({_REASONS})
     AND coalesce(current_setting('{GRANT}', true), '')
         = neonpro_evidence_mac(v_xid::text, p_clinic::text, p_reason);
END
$$"""

_ALLOW = f"""CREATE OR REPLACE FUNCTION neonpro_allow_evidence_removal(p_reason text)
    RETURNS uuid
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  v_clinic uuid := (SELECT clinic_id FROM neonpro_session_context());
BEGIN
{EVIDENCE_CHECKS}  EXECUTE format('SET LOCAL {GRANT} = %L', neonpro_evidence_mac(
    pg_current_xact_id()::text, v_clinic::text, p_reason));
  RETURN v_clinic;
END
$$"""
