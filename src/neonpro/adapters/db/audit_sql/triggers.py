"""The audit trail's helper functions and triggers: who acted (from the bound context),
what changed (row-change events), what never changes (the ledger guard)."""

from __future__ import annotations

from neonpro.adapters.db.audit_sql.names import (
    CHAINS,
    EVIDENCE_REMOVED,
    IGNORED_FIELDS,
    LP,
    NIL,
    SEAL_COLUMNS,
)


def _from_context() -> str:
    """An event's actor, role, request, address, agent, session: the transaction's own."""
    fields = ("actor_id", "actor_role", "request_id", "ip_address", "user_agent", "session_id")
    return "\n".join(
        f"""  IF NEW.{f} IS NULL THEN
    NEW.{f} := v_ctx.{'ip' if f == 'ip_address' else f};
  ELSIF NEW.{f} IS DISTINCT FROM v_ctx.{'ip' if f == 'ip_address' else f} THEN
    RAISE EXCEPTION 'an audit event''s {f} is the transaction''s own'
      USING ERRCODE = 'insufficient_privilege';
  END IF;""" for f in fields)


def length_prefixed() -> str:
    """Length-prefixing a value for canonical HMAC messages."""
    return f"""CREATE FUNCTION {LP}(v text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN v IS NULL THEN '~' ELSE octet_length(v)::text || ':' || v END
$$"""


def audit_retention() -> str:
    """How long an audit event is kept, by category."""
    # retention by category (domain.md): 10 years for patient and clinical records,
    # 7 for critical security events, 5 for authentication, 6 at least for any access
    # to health data, 3 for the rest
    return """CREATE FUNCTION neonpro_audit_retention(p_action text, p_resource text, p_risk text)
RETURNS interval LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE
    WHEN p_resource IN ('patients', 'appointments', 'consent_records', 'disclosures',
                        'data_subject_requests', 'patient')
         AND p_action NOT IN ('VIEW', 'EXPORT', 'LEGAL_HOLD_READ') THEN interval '10 years'
    WHEN p_risk = 'critical' THEN interval '7 years'
    WHEN p_resource IN ('patients', 'appointments', 'consent_records', 'disclosures',
                        'data_subject_requests', 'patient', 'appointment')
         OR p_action IN ('VIEW', 'EXPORT', 'LEGAL_HOLD_READ') THEN interval '6 years'
    WHEN p_action IN ('LOGIN', 'LOGOUT', 'LOGIN_FAILED') THEN interval '5 years'
    ELSE interval '3 years'
  END
$$"""


def patient_ref() -> str:
    """A patient's keyed reference in audit events (owner's key)."""
    return """CREATE FUNCTION neonpro_patient_ref(p_patient uuid) RETURNS bytea
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT CASE WHEN p_patient IS NULL THEN NULL ELSE
    sha256(k.outer_pad || sha256(k.inner_pad
      || convert_to('patient_ref:' || p_patient::text, 'UTF8'))) END
  FROM audit_ref_keys k WHERE k.id = 1
$$"""


def audit_before_insert() -> str:
    """Stamping an event with its transaction's context, refusing others."""
    from_context = _from_context()
    return f"""CREATE FUNCTION neonpro_audit_before_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  v_ctx record;
BEGIN
  IF NEW.seq IS NOT NULL OR NEW.hash IS NOT NULL OR NEW.prev_hash IS NOT NULL
     OR NEW.key_id IS NOT NULL THEN
    RAISE EXCEPTION 'audit events are inserted unsealed; the sealer assigns seq and hash'
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  -- who, from where, in which clinic: the transaction's bound context, not the insert's
  SELECT * INTO v_ctx FROM neonpro_session_context();
  -- the clinic: the transaction's. A row-change trigger's event (depth > 1) belongs to the
  -- changed row's clinic; a cross-clinic transaction (bound to no clinic) of a role that
  -- bypasses row-level security (the service login) names the clinic it acted on
  IF pg_trigger_depth() <= 1 THEN
    IF NEW.clinic_id IS NULL THEN
      NEW.clinic_id := coalesce(v_ctx.clinic_id, {NIL});
    ELSIF NEW.clinic_id <> coalesce(v_ctx.clinic_id, {NIL}) AND NOT (v_ctx.clinic_id IS NULL
        AND (SELECT r.rolbypassrls FROM pg_roles r WHERE r.rolname = current_user)) THEN
      RAISE EXCEPTION 'an audit event belongs to the clinic of its transaction'
        USING ERRCODE = 'insufficient_privilege';
    END IF;
  END IF;
{from_context}
  -- the database stamps the time; only the owner (imports, restores) may set another
  IF NEW.occurred_at IS NULL OR NOT pg_has_role(current_user,
      (SELECT c.relowner FROM pg_class c WHERE c.oid = TG_RELID), 'MEMBER') THEN
    NEW.occurred_at := now();
  END IF;
  NEW.retain_until := (NEW.occurred_at AT TIME ZONE 'UTC')::date
    + neonpro_audit_retention(NEW.action, NEW.resource_type, NEW.risk_level);
  RETURN NEW;
END
$$"""


# who may replace a consent's evidence by {"removed": reason}: the owner (its function below);
# on Citus, a transaction granted it (audit_sql.evidence)
OWNER_REMOVES = ("current_user = (SELECT pg_get_userbyid(c.relowner)\n"
                 "         FROM pg_class c WHERE c.oid = TG_RELID)")
_REASONS = ", ".join(f"'{r}'" for r in EVIDENCE_REMOVED)
# the removal's checks: a reason the law gives, in one clinic's transaction (v_clinic)
EVIDENCE_CHECKS = f"""\
  IF p_reason IS NULL OR p_reason NOT IN ({_REASONS}) THEN
    RAISE EXCEPTION 'consent evidence is removed on erasure or retention only'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF v_clinic IS NULL THEN
    RAISE EXCEPTION 'consent evidence is removed in one clinic''s transaction'
      USING ERRCODE = 'insufficient_privilege';
  END IF;
"""


def ledger_guard() -> str:
    """Refusing UPDATE and DELETE on the ledgers, sealing and pruning excepted."""
    chains = ", ".join(f"'{c}'" for c in CHAINS)
    seal = ", ".join(f"'{c}'" for c in SEAL_COLUMNS)
    removed = ", ".join(f"""'{{"removed": "{r}"}}'::jsonb""" for r in EVIDENCE_REMOVED)
    return f"""CREATE FUNCTION neonpro_ledger_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  v_old jsonb := to_jsonb(OLD);
  v_new jsonb;
BEGIN
  IF TG_OP = 'UPDATE' THEN
    v_new := to_jsonb(NEW);
    IF TG_TABLE_NAME IN ({chains}) AND v_old ->> 'seq' IS NULL AND v_old ->> 'hash' IS NULL
       AND v_new ->> 'seq' IS NOT NULL AND v_new ->> 'hash' IS NOT NULL
       AND v_new ->> 'key_id' IS NOT NULL
       AND (v_new - ARRAY[{seal}]) = (v_old - ARRAY[{seal}]) THEN
      RETURN NEW;  -- sealing: seq, hashes and key id set once, the entry itself unchanged
    END IF;
    IF TG_TABLE_NAME = 'consent_records' AND {OWNER_REMOVES}
       AND v_new -> 'evidence' IN ({removed})
       AND (v_new - 'evidence') = (v_old - 'evidence') THEN
      RETURN NEW;  -- neonpro_remove_consent_evidence: the channel's identifiers go
    END IF;
  ELSIF TG_OP = 'DELETE' THEN
    IF TG_TABLE_NAME = 'audit_events' AND v_old ->> 'seq' IS NOT NULL AND EXISTS (
        SELECT 1 FROM audit_chain_cuts c WHERE c.clinic_id = (v_old ->> 'clinic_id')::uuid
        AND c.seq >= (v_old ->> 'seq')::bigint) THEN
      RETURN OLD;  -- pruning an archived segment below a signed cut
    END IF;
  END IF;
  RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'insufficient_privilege';
END
$$"""


# the row-change trigger's event: the row's clinic, id and patient, the bound context
_RECORD_EVENT = """\
  INSERT INTO audit_events (clinic_id, actor_id, actor_role, action, resource_type,
      resource_id, patient_ref, status, risk_level, ip_address, user_agent, session_id,
      request_id, details)
  VALUES (v_clinic, v_actor::uuid, NULLIF(current_setting('app.actor_role', true), ''),
      v_action, TG_TABLE_NAME, coalesce(v_row ->> 'id', v_row ->> 'user_id'),
      neonpro_patient_ref(v_patient), 'success',
      CASE WHEN TG_OP = 'DELETE' THEN 'medium' ELSE 'low' END,
      NULLIF(current_setting('app.ip', true), '')::inet,
      NULLIF(current_setting('app.user_agent', true), ''),
      NULLIF(current_setting('app.session_id', true), ''),
      NULLIF(current_setting('app.request_id', true), ''),
      jsonb_build_object('fields', to_jsonb(v_fields), 'source', 'trigger'));"""


def audit_row_change() -> str:
    """Recording a row's INSERT, UPDATE or DELETE as an audit event."""
    ignored = ", ".join(f"'{c}'" for c in IGNORED_FIELDS)
    return f"""CREATE FUNCTION neonpro_audit_row_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  v_actor text := NULLIF(current_setting('app.actor_id', true), '');
  v_row jsonb;
  v_old jsonb;
  v_fields text[];
  v_action text;
  v_clinic uuid;
  v_patient uuid;
BEGIN
  IF v_actor IS NULL THEN
    RAISE EXCEPTION 'no acting user for a change to %: set app.actor_id (jobs and '
      'migrations act as named system actors)', TG_TABLE_NAME
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF TG_OP = 'DELETE' THEN v_row := to_jsonb(OLD); ELSE v_row := to_jsonb(NEW); END IF;
  IF TG_OP = 'UPDATE' THEN
    v_old := to_jsonb(OLD);
    SELECT coalesce(array_agg(n.key ORDER BY n.key), '{{}}') INTO v_fields
      FROM jsonb_each(v_row) n
      WHERE n.value IS DISTINCT FROM v_old -> n.key AND n.key NOT IN ({ignored});
    IF cardinality(v_fields) = 0 THEN
      RETURN NULL;
    END IF;
    v_action := 'UPDATE';
  ELSE
    SELECT coalesce(array_agg(n.key ORDER BY n.key), '{{}}') INTO v_fields
      FROM jsonb_each(v_row) n
      WHERE n.value <> 'null'::jsonb AND n.key NOT IN ({ignored});
    v_action := CASE TG_OP WHEN 'INSERT' THEN 'CREATE' ELSE 'DELETE' END;
  END IF;
  IF TG_TABLE_NAME = 'consent_records' AND TG_OP = 'INSERT' THEN
    v_action := CASE v_row ->> 'status' WHEN 'granted' THEN 'CONSENT_GRANTED'
      WHEN 'revoked' THEN 'CONSENT_REVOKED' WHEN 'expired' THEN 'CONSENT_EXPIRED'
      ELSE 'CREATE' END;
  END IF;
  v_clinic := coalesce((v_row ->> 'clinic_id')::uuid, {NIL});
  v_patient := CASE WHEN TG_TABLE_NAME = 'patients' THEN (v_row ->> 'id')::uuid
                    ELSE (v_row ->> 'patient_id')::uuid END;
{_RECORD_EVENT}
  RETURN NULL;
END
$$"""


def remove_consent_evidence() -> str:
    """Removing a consent's channel identifiers on erasure or retention."""
    return f"""CREATE FUNCTION neonpro_remove_consent_evidence(p_patients uuid[], p_ids uuid[],
    p_reason text) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  v_clinic uuid := (SELECT clinic_id FROM neonpro_session_context());
  v_count integer;
BEGIN
{EVIDENCE_CHECKS}\
  -- the proof stays (who, when, which terms); the channel's identifiers do not. Each row
  -- changed is audited by the row-change trigger, the call itself by the event below
  UPDATE consent_records SET evidence = jsonb_build_object('removed', p_reason)
   WHERE clinic_id = v_clinic AND evidence IS DISTINCT FROM jsonb_build_object('removed', p_reason)
     AND (patient_id = ANY(coalesce(p_patients, '{{}}')) OR id = ANY(coalesce(p_ids, '{{}}')));
  GET DIAGNOSTICS v_count = ROW_COUNT;
  IF v_count > 0 THEN
    INSERT INTO audit_events (action, resource_type, risk_level, details)
    VALUES ('ANONYMIZE', 'consent_records', 'medium', jsonb_build_object(
      'fields', jsonb_build_array('evidence'), 'reason', p_reason, 'rows', v_count));
  END IF;
  RETURN v_count;
END
$$"""
