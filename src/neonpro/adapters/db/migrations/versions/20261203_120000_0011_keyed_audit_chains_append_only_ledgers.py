"""keyed audit chains, append-only ledgers, bound audit contexts, a login per role

Revision ID: 0011
Revises: 0008
Create Date: 2026-12-03 12:00:00+00:00

* audit_events gets ``key_id``: new events are sealed by the process holding the audit key
  (HMAC, ``neonpro_chain_head`` / ``neonpro_chain_seal``); the SQL sealer, which hashed
  without a key, and the public canonical function are dropped.
* Events sealed before this revision keep their unkeyed hashes; each chain's head is
  verified here and signed into ``audit_chain_anchors`` with the audit key, which is why
  this revision needs the key ring when there are sealed events (``neonpro db upgrade``
  passes it; bare alembic cannot).
* The erasure ledger, the consent ledger and the disclosure log are chained like the
  audit trail (``seq``, ``prev_hash``, ``hash``, ``key_id``); their existing entries are
  sealed by the next sealer run.
* Ledgers are append-only for everyone: consent_records and disclosures lose the
  application's and the service's UPDATE and DELETE, erasure_ledger the application's
  INSERT; guard triggers (``ENABLE ALWAYS``) refuse UPDATE, DELETE and TRUNCATE on every
  ledger, owner included; consent evidence is removed only by
  ``neonpro_remove_consent_evidence``.
* Audit events take actor, role and clinic from the transaction's context, bound by its
  first statement (``neonpro_bind_context``).
* Appointment notifications go to a per-clinic channel only the service login can name.
* Roles are logins (the bootstrap in env.py); nothing here depends on it.

Downgrade re-hashes keyed events without a key (as the SQL sealer of 0008 did) and drops
the anchors, the key ids and the ledger chain: below this revision the trail is again only
as strong as an unkeyed chain.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

from neonpro.adapters.db.migrations import migration_roles
from neonpro.domain.audit_chain import sign_head

revision: str = '0011'
down_revision: str | Sequence[str] | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# frozen copies of audit_sql.py, feed_sql.py and security.py at this revision; {owner},
# {app}, {service} and {legal_hold} are the configured role names
ANCHOR_TABLE_SQL: tuple[str, ...] = (
    'ALTER TABLE audit_chain_anchors ENABLE ROW LEVEL SECURITY',
    'ALTER TABLE audit_chain_anchors FORCE ROW LEVEL SECURITY',
    'REVOKE ALL ON audit_chain_anchors FROM PUBLIC',
    'GRANT SELECT ON audit_chain_anchors TO {service}',
)
FUNCTIONS: tuple[str, ...] = (
    "CREATE OR REPLACE FUNCTION neonpro_lp(v text) RETURNS text\nLANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$\n  SELECT CASE WHEN v IS NULL THEN '~' ELSE octet_length(v)::text || ':' || v END\n$$",
    "CREATE OR REPLACE FUNCTION neonpro_audit_retention(p_action text, p_resource text, p_risk text)\nRETURNS interval LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$\n  SELECT CASE\n    WHEN p_resource IN ('patients', 'appointments', 'consent_records', 'disclosures',\n                        'data_subject_requests', 'patient')\n         AND p_action NOT IN ('VIEW', 'EXPORT', 'LEGAL_HOLD_READ') THEN interval '10 years'\n    WHEN p_risk = 'critical' THEN interval '7 years'\n    WHEN p_resource IN ('patients', 'appointments', 'consent_records', 'disclosures',\n                        'data_subject_requests', 'patient', 'appointment')\n         OR p_action IN ('VIEW', 'EXPORT', 'LEGAL_HOLD_READ') THEN interval '6 years'\n    WHEN p_action IN ('LOGIN', 'LOGOUT', 'LOGIN_FAILED') THEN interval '5 years'\n    ELSE interval '3 years'\n  END\n$$",
    "CREATE OR REPLACE FUNCTION neonpro_patient_ref(p_patient uuid) RETURNS bytea\nLANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$\n  SELECT CASE WHEN p_patient IS NULL THEN NULL ELSE\n    sha256(k.outer_pad || sha256(k.inner_pad\n      || convert_to('patient_ref:' || p_patient::text, 'UTF8'))) END\n  FROM audit_ref_keys k WHERE k.id = 1\n$$",
    "CREATE OR REPLACE FUNCTION neonpro_context_mac(p_xid text, p_clinic_id text, p_actor_id text, p_actor_role text, p_request_id text, p_ip text, p_user_agent text, p_session_id text) RETURNS text\nLANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$\n  SELECT encode(sha256(k.outer_pad || sha256(k.inner_pad || convert_to('neonpro-context-v1' || neonpro_lp(p_xid) || neonpro_lp(p_clinic_id) || neonpro_lp(p_actor_id) || neonpro_lp(p_actor_role) || neonpro_lp(p_request_id) || neonpro_lp(p_ip) || neonpro_lp(p_user_agent) || neonpro_lp(p_session_id), 'UTF8'))), 'hex') FROM audit_ref_keys k WHERE k.id = 1\n$$",
    "CREATE OR REPLACE FUNCTION neonpro_bind_context(p_clinic_id text, p_actor_id text, p_actor_role text, p_request_id text, p_ip text, p_user_agent text, p_session_id text) RETURNS void\nLANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$\nBEGIN\n  -- once per transaction, as its first statement: the transaction id it is bound to is\n  -- assigned here, so a second call (after SQL switched a setting) finds one and stops\n  IF pg_current_xact_id_if_assigned() IS NOT NULL THEN\n    RAISE EXCEPTION 'a transaction''s context is bound once, by its first statement'\n      USING ERRCODE = 'insufficient_privilege';\n  END IF;\n  PERFORM NULLIF(p_clinic_id, '')::uuid, NULLIF(p_actor_id, '')::uuid, NULLIF(p_ip, '')::inet;\n  PERFORM set_config('app.clinic_id', coalesce(p_clinic_id, ''), true),\n    set_config('app.actor_id', coalesce(p_actor_id, ''), true),\n    set_config('app.actor_role', coalesce(p_actor_role, ''), true),\n    set_config('app.request_id', coalesce(p_request_id, ''), true),\n    set_config('app.ip', coalesce(p_ip, ''), true),\n    set_config('app.user_agent', coalesce(p_user_agent, ''), true),\n    set_config('app.session_id', coalesce(p_session_id, ''), true),\n    set_config('app.context', neonpro_context_mac(pg_current_xact_id()::text, coalesce(p_clinic_id, ''), coalesce(p_actor_id, ''), coalesce(p_actor_role, ''), coalesce(p_request_id, ''), coalesce(p_ip, ''), coalesce(p_user_agent, ''), coalesce(p_session_id, '')), true);\nEND\n$$",
    "CREATE OR REPLACE FUNCTION neonpro_session_context(OUT clinic_id uuid, OUT actor_id uuid,\n    OUT actor_role text, OUT request_id text, OUT ip inet, OUT user_agent text,\n    OUT session_id text)\nLANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$\nDECLARE\n  v_xid xid8 := pg_current_xact_id_if_assigned();\nBEGIN\n  IF v_xid IS NULL OR coalesce(current_setting('app.context', true), '')\n      <> neonpro_context_mac(v_xid::text, coalesce(current_setting('app.clinic_id', true), ''), coalesce(current_setting('app.actor_id', true), ''), coalesce(current_setting('app.actor_role', true), ''), coalesce(current_setting('app.request_id', true), ''), coalesce(current_setting('app.ip', true), ''), coalesce(current_setting('app.user_agent', true), ''), coalesce(current_setting('app.session_id', true), '')) THEN\n    RAISE EXCEPTION 'the transaction''s context (clinic, actor, role) is not the one its '\n      'first statement bound (neonpro_bind_context), or was changed since'\n      USING ERRCODE = 'insufficient_privilege';\n  END IF;\n  clinic_id := NULLIF(current_setting('app.clinic_id', true), '')::uuid;\n  actor_id := NULLIF(current_setting('app.actor_id', true), '')::uuid;\n  actor_role := NULLIF(current_setting('app.actor_role', true), '');\n  request_id := NULLIF(current_setting('app.request_id', true), '');\n  ip := NULLIF(current_setting('app.ip', true), '')::inet;\n  user_agent := NULLIF(current_setting('app.user_agent', true), '');\n  session_id := NULLIF(current_setting('app.session_id', true), '');\nEND\n$$",
    "CREATE OR REPLACE FUNCTION neonpro_audit_before_insert() RETURNS trigger\nLANGUAGE plpgsql AS $$\nDECLARE\n  v_ctx record;\nBEGIN\n  IF NEW.seq IS NOT NULL OR NEW.hash IS NOT NULL OR NEW.prev_hash IS NOT NULL\n     OR NEW.key_id IS NOT NULL THEN\n    RAISE EXCEPTION 'audit events are inserted unsealed; the sealer assigns seq and hash'\n      USING ERRCODE = 'insufficient_privilege';\n  END IF;\n  -- who, from where, in which clinic: the transaction's bound context, not the insert's\n  SELECT * INTO v_ctx FROM neonpro_session_context();\n  -- the clinic: the transaction's. A row-change trigger's event (depth > 1) belongs to the\n  -- changed row's clinic; a cross-clinic transaction (bound to no clinic) of a role that\n  -- bypasses row-level security (the service login) names the clinic it acted on\n  IF pg_trigger_depth() <= 1 THEN\n    IF NEW.clinic_id IS NULL THEN\n      NEW.clinic_id := coalesce(v_ctx.clinic_id, '00000000-0000-0000-0000-000000000000'::uuid);\n    ELSIF NEW.clinic_id <> coalesce(v_ctx.clinic_id, '00000000-0000-0000-0000-000000000000'::uuid) AND NOT (v_ctx.clinic_id IS NULL\n        AND (SELECT r.rolbypassrls FROM pg_roles r WHERE r.rolname = current_user)) THEN\n      RAISE EXCEPTION 'an audit event belongs to the clinic of its transaction'\n        USING ERRCODE = 'insufficient_privilege';\n    END IF;\n  END IF;\n  IF NEW.actor_id IS NULL THEN\n    NEW.actor_id := v_ctx.actor_id;\n  ELSIF NEW.actor_id IS DISTINCT FROM v_ctx.actor_id THEN\n    RAISE EXCEPTION 'an audit event''s actor_id is the transaction''s own'\n      USING ERRCODE = 'insufficient_privilege';\n  END IF;\n  IF NEW.actor_role IS NULL THEN\n    NEW.actor_role := v_ctx.actor_role;\n  ELSIF NEW.actor_role IS DISTINCT FROM v_ctx.actor_role THEN\n    RAISE EXCEPTION 'an audit event''s actor_role is the transaction''s own'\n      USING ERRCODE = 'insufficient_privilege';\n  END IF;\n  IF NEW.request_id IS NULL THEN\n    NEW.request_id := v_ctx.request_id;\n  ELSIF NEW.request_id IS DISTINCT FROM v_ctx.request_id THEN\n    RAISE EXCEPTION 'an audit event''s request_id is the transaction''s own'\n      USING ERRCODE = 'insufficient_privilege';\n  END IF;\n  IF NEW.ip_address IS NULL THEN\n    NEW.ip_address := v_ctx.ip;\n  ELSIF NEW.ip_address IS DISTINCT FROM v_ctx.ip THEN\n    RAISE EXCEPTION 'an audit event''s ip_address is the transaction''s own'\n      USING ERRCODE = 'insufficient_privilege';\n  END IF;\n  IF NEW.user_agent IS NULL THEN\n    NEW.user_agent := v_ctx.user_agent;\n  ELSIF NEW.user_agent IS DISTINCT FROM v_ctx.user_agent THEN\n    RAISE EXCEPTION 'an audit event''s user_agent is the transaction''s own'\n      USING ERRCODE = 'insufficient_privilege';\n  END IF;\n  IF NEW.session_id IS NULL THEN\n    NEW.session_id := v_ctx.session_id;\n  ELSIF NEW.session_id IS DISTINCT FROM v_ctx.session_id THEN\n    RAISE EXCEPTION 'an audit event''s session_id is the transaction''s own'\n      USING ERRCODE = 'insufficient_privilege';\n  END IF;\n  -- the database stamps the time; only the owner (imports, restores) may set another\n  IF NEW.occurred_at IS NULL OR NOT pg_has_role(current_user,\n      (SELECT c.relowner FROM pg_class c WHERE c.oid = TG_RELID), 'MEMBER') THEN\n    NEW.occurred_at := now();\n  END IF;\n  NEW.retain_until := (NEW.occurred_at AT TIME ZONE 'UTC')::date\n    + neonpro_audit_retention(NEW.action, NEW.resource_type, NEW.risk_level);\n  RETURN NEW;\nEND\n$$",
    'CREATE OR REPLACE FUNCTION neonpro_ledger_guard() RETURNS trigger\nLANGUAGE plpgsql AS $$\nDECLARE\n  v_old jsonb := to_jsonb(OLD);\n  v_new jsonb;\nBEGIN\n  IF TG_OP = \'UPDATE\' THEN\n    v_new := to_jsonb(NEW);\n    IF TG_TABLE_NAME IN (\'audit_events\', \'erasure_ledger\', \'consent_records\', \'disclosures\') AND v_old ->> \'seq\' IS NULL AND v_old ->> \'hash\' IS NULL\n       AND v_new ->> \'seq\' IS NOT NULL AND v_new ->> \'hash\' IS NOT NULL\n       AND v_new ->> \'key_id\' IS NOT NULL\n       AND (v_new - ARRAY[\'seq\', \'prev_hash\', \'hash\', \'key_id\']) = (v_old - ARRAY[\'seq\', \'prev_hash\', \'hash\', \'key_id\']) THEN\n      RETURN NEW;  -- sealing: seq, hashes and key id set once, the entry itself unchanged\n    END IF;\n    IF TG_TABLE_NAME = \'consent_records\' AND current_user = (SELECT pg_get_userbyid(c.relowner)\n         FROM pg_class c WHERE c.oid = TG_RELID)\n       AND v_new -> \'evidence\' IN (\'{"removed": "erasure"}\'::jsonb, \'{"removed": "retention"}\'::jsonb)\n       AND (v_new - \'evidence\') = (v_old - \'evidence\') THEN\n      RETURN NEW;  -- neonpro_remove_consent_evidence: the channel\'s identifiers go\n    END IF;\n  ELSIF TG_OP = \'DELETE\' THEN\n    IF TG_TABLE_NAME = \'audit_events\' AND v_old ->> \'seq\' IS NOT NULL AND EXISTS (\n        SELECT 1 FROM audit_chain_cuts c WHERE c.clinic_id = (v_old ->> \'clinic_id\')::uuid\n        AND c.seq >= (v_old ->> \'seq\')::bigint) THEN\n      RETURN OLD;  -- pruning an archived segment below a signed cut\n    END IF;\n  END IF;\n  RAISE EXCEPTION \'% is append-only: % refused\', TG_TABLE_NAME, TG_OP\n    USING ERRCODE = \'insufficient_privilege\';\nEND\n$$',
    "CREATE OR REPLACE FUNCTION neonpro_audit_row_change() RETURNS trigger\nLANGUAGE plpgsql AS $$\nDECLARE\n  v_actor text := NULLIF(current_setting('app.actor_id', true), '');\n  v_row jsonb;\n  v_old jsonb;\n  v_fields text[];\n  v_action text;\n  v_clinic uuid;\n  v_patient uuid;\nBEGIN\n  IF v_actor IS NULL THEN\n    RAISE EXCEPTION 'no acting user for a change to %: set app.actor_id (jobs and '\n      'migrations act as named system actors)', TG_TABLE_NAME\n      USING ERRCODE = 'insufficient_privilege';\n  END IF;\n  IF TG_OP = 'DELETE' THEN v_row := to_jsonb(OLD); ELSE v_row := to_jsonb(NEW); END IF;\n  IF TG_OP = 'UPDATE' THEN\n    v_old := to_jsonb(OLD);\n    SELECT coalesce(array_agg(n.key ORDER BY n.key), '{}') INTO v_fields\n      FROM jsonb_each(v_row) n\n      WHERE n.value IS DISTINCT FROM v_old -> n.key AND n.key NOT IN ('updated_at', 'updated_by', 'version', 'search_name');\n    IF cardinality(v_fields) = 0 THEN\n      RETURN NULL;\n    END IF;\n    v_action := 'UPDATE';\n  ELSE\n    SELECT coalesce(array_agg(n.key ORDER BY n.key), '{}') INTO v_fields\n      FROM jsonb_each(v_row) n\n      WHERE n.value <> 'null'::jsonb AND n.key NOT IN ('updated_at', 'updated_by', 'version', 'search_name');\n    v_action := CASE TG_OP WHEN 'INSERT' THEN 'CREATE' ELSE 'DELETE' END;\n  END IF;\n  IF TG_TABLE_NAME = 'consent_records' AND TG_OP = 'INSERT' THEN\n    v_action := CASE v_row ->> 'status' WHEN 'granted' THEN 'CONSENT_GRANTED'\n      WHEN 'revoked' THEN 'CONSENT_REVOKED' WHEN 'expired' THEN 'CONSENT_EXPIRED'\n      ELSE 'CREATE' END;\n  END IF;\n  v_clinic := coalesce((v_row ->> 'clinic_id')::uuid, '00000000-0000-0000-0000-000000000000'::uuid);\n  v_patient := CASE WHEN TG_TABLE_NAME = 'patients' THEN (v_row ->> 'id')::uuid\n                    ELSE (v_row ->> 'patient_id')::uuid END;\n  INSERT INTO audit_events (clinic_id, actor_id, actor_role, action, resource_type,\n      resource_id, patient_ref, status, risk_level, ip_address, user_agent, session_id,\n      request_id, details)\n  VALUES (v_clinic, v_actor::uuid, NULLIF(current_setting('app.actor_role', true), ''),\n      v_action, TG_TABLE_NAME, coalesce(v_row ->> 'id', v_row ->> 'user_id'),\n      neonpro_patient_ref(v_patient), 'success',\n      CASE WHEN TG_OP = 'DELETE' THEN 'medium' ELSE 'low' END,\n      NULLIF(current_setting('app.ip', true), '')::inet,\n      NULLIF(current_setting('app.user_agent', true), ''),\n      NULLIF(current_setting('app.session_id', true), ''),\n      NULLIF(current_setting('app.request_id', true), ''),\n      jsonb_build_object('fields', to_jsonb(v_fields), 'source', 'trigger'));\n  RETURN NULL;\nEND\n$$",
    "CREATE OR REPLACE FUNCTION neonpro_chain_head(p_chain text, p_clinic uuid, OUT seq bigint,\n    OUT hash bytea)\nLANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$\nBEGIN\n  IF p_chain IS NULL OR p_chain NOT IN ('audit_events', 'erasure_ledger', 'consent_records', 'disclosures') THEN\n    RAISE EXCEPTION 'no chain %', p_chain USING ERRCODE = 'invalid_parameter_value';\n  END IF;\n  -- one sealer per chain at a time (held until the transaction ends); writers never wait\n  PERFORM pg_advisory_xact_lock(hashtextextended(\n    CASE p_chain WHEN 'audit_events' THEN 'neonpro.audit.seal:'\n    ELSE 'neonpro.chain.seal:' || p_chain || ':' END || p_clinic::text, 0));\n  EXECUTE format('SELECT e.seq, e.hash FROM %I e WHERE e.clinic_id = $1 AND e.seq IS NOT NULL '\n                 'ORDER BY e.seq DESC LIMIT 1', p_chain) INTO seq, hash USING p_clinic;\n  IF seq IS NULL AND p_chain = 'audit_events' THEN  -- everything pruned: the cut's head\n    SELECT c.seq, c.hash INTO seq, hash FROM audit_chain_cuts c\n      WHERE c.clinic_id = p_clinic ORDER BY c.seq DESC LIMIT 1;\n  END IF;\n  seq := coalesce(seq, 0);\nEND\n$$",
    "CREATE OR REPLACE FUNCTION neonpro_chain_seal(p_chain text, p_clinic uuid, p_after_seq bigint,\n    p_after_hash bytea, p_key_id text, p_ids uuid[], p_hashes bytea[]) RETURNS integer\nLANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$\nDECLARE\n  v_head record;\n  v_count integer;\nBEGIN\n  SELECT * INTO v_head FROM neonpro_chain_head(p_chain, p_clinic);\n  IF v_head.seq <> p_after_seq OR v_head.hash IS DISTINCT FROM p_after_hash THEN\n    RAISE EXCEPTION 'the chain is at seq %, not %: seal after its head', v_head.seq,\n      p_after_seq USING ERRCODE = 'serialization_failure';\n  END IF;\n  IF p_key_id IS NULL OR p_key_id !~ '^[A-Za-z0-9_-]{1,32}$' THEN\n    RAISE EXCEPTION 'a seal names its audit key' USING ERRCODE = 'invalid_parameter_value';\n  END IF;\n  IF cardinality(p_ids) IS DISTINCT FROM cardinality(p_hashes) OR EXISTS (\n      SELECT FROM unnest(p_hashes) h WHERE h IS NULL OR octet_length(h) <> 32) THEN\n    RAISE EXCEPTION 'one 32-byte hash per entry' USING ERRCODE = 'invalid_parameter_value';\n  END IF;\n  -- one UPDATE for the whole batch (the guard trigger still checks every row)\n  EXECUTE format('UPDATE %I e SET seq = $3 + u.n, hash = u.h, key_id = $5, '\n                 'prev_hash = CASE WHEN u.n = 1 THEN $4 ELSE $6[u.n - 1] END '\n                 'FROM unnest($1::uuid[], $6::bytea[]) WITH ORDINALITY AS u(id, h, n) '\n                 'WHERE e.clinic_id = $2 AND e.id = u.id AND e.seq IS NULL', p_chain)\n    USING p_ids, p_clinic, p_after_seq, p_after_hash, p_key_id, p_hashes;\n  GET DIAGNOSTICS v_count = ROW_COUNT;\n  IF v_count <> coalesce(cardinality(p_ids), 0) THEN\n    RAISE EXCEPTION 'only unsealed entries of the clinic are sealed, each once'\n      USING ERRCODE = 'invalid_parameter_value';\n  END IF;\n  RETURN v_count;\nEND\n$$",
    "CREATE OR REPLACE FUNCTION neonpro_audit_prune(p_clinic uuid, p_upto bigint, p_hash bytea,\n    p_archive_sha256 text, p_key_id text, p_signature text) RETURNS bigint\nLANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$\nDECLARE\n  v_count bigint;\nBEGIN\n  PERFORM pg_advisory_xact_lock(hashtextextended('neonpro.audit.seal:' || p_clinic::text, 0));\n  IF NOT EXISTS (SELECT 1 FROM audit_events WHERE clinic_id = p_clinic AND seq = p_upto\n                 AND hash = p_hash) THEN\n    RAISE EXCEPTION 'the cut must be a sealed event of the chain' USING ERRCODE = 'data_exception';\n  END IF;\n  IF EXISTS (SELECT 1 FROM audit_events WHERE clinic_id = p_clinic AND seq <= p_upto\n             AND retain_until >= current_date) THEN\n    RAISE EXCEPTION 'events up to the cut are not all past their retention'\n      USING ERRCODE = 'data_exception';\n  END IF;\n  SELECT count(*) INTO v_count FROM audit_events WHERE clinic_id = p_clinic AND seq <= p_upto;\n  INSERT INTO audit_chain_cuts (clinic_id, seq, hash, pruned_events, archive_sha256,\n      signature, key_id)\n    VALUES (p_clinic, p_upto, p_hash, v_count, p_archive_sha256, p_signature, p_key_id);\n  DELETE FROM audit_events WHERE clinic_id = p_clinic AND seq <= p_upto;\n  RETURN v_count;\nEND\n$$",
    "CREATE OR REPLACE FUNCTION neonpro_remove_consent_evidence(p_patients uuid[], p_ids uuid[],\n    p_reason text) RETURNS integer\nLANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$\nDECLARE\n  v_clinic uuid := (SELECT clinic_id FROM neonpro_session_context());\n  v_count integer;\nBEGIN\n  IF p_reason IS NULL OR p_reason NOT IN ('erasure', 'retention') THEN\n    RAISE EXCEPTION 'consent evidence is removed on erasure or retention only'\n      USING ERRCODE = 'invalid_parameter_value';\n  END IF;\n  IF v_clinic IS NULL THEN\n    RAISE EXCEPTION 'consent evidence is removed in one clinic''s transaction'\n      USING ERRCODE = 'insufficient_privilege';\n  END IF;\n  -- the proof stays (who, when, which terms); the channel's identifiers do not. Each row\n  -- changed is audited by the row-change trigger, the call itself by the event below\n  UPDATE consent_records SET evidence = jsonb_build_object('removed', p_reason)\n   WHERE clinic_id = v_clinic AND evidence IS DISTINCT FROM jsonb_build_object('removed', p_reason)\n     AND (patient_id = ANY(coalesce(p_patients, '{}')) OR id = ANY(coalesce(p_ids, '{}')));\n  GET DIAGNOSTICS v_count = ROW_COUNT;\n  IF v_count > 0 THEN\n    INSERT INTO audit_events (action, resource_type, risk_level, details)\n    VALUES ('ANONYMIZE', 'consent_records', 'medium', jsonb_build_object(\n      'fields', jsonb_build_array('evidence'), 'reason', p_reason, 'rows', v_count));\n  END IF;\n  RETURN v_count;\nEND\n$$",
    "CREATE OR REPLACE FUNCTION neonpro_feed_channel(p_clinic uuid) RETURNS text\nLANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$\n  SELECT 'neonpro_feed_' || left(encode(sha256(k.outer_pad || sha256(k.inner_pad\n    || convert_to('neonpro-feed-v1:' || p_clinic::text, 'UTF8'))), 'hex'), 32)\n  FROM audit_ref_keys k WHERE k.id = 1\n$$",
    "CREATE OR REPLACE FUNCTION neonpro_appointment_feed() RETURNS trigger\nLANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$\nDECLARE\n  v_row appointments;\n  v_event text;\nBEGIN\n  IF TG_OP = 'DELETE' THEN\n    v_row := OLD;\n    v_event := 'deleted';\n  ELSE\n    v_row := NEW;\n    IF TG_OP = 'INSERT' THEN\n      v_event := CASE WHEN NEW.rescheduled_from_id IS NULL THEN 'booked' ELSE 'rescheduled' END;\n    ELSIF NEW.status IS DISTINCT FROM OLD.status THEN\n      v_event := CASE NEW.status\n        WHEN 'confirmed' THEN 'confirmed' WHEN 'cancelled' THEN 'cancelled'\n        WHEN 'in_progress' THEN 'started' WHEN 'completed' THEN 'completed'\n        WHEN 'no_show' THEN 'no_show' END;\n    ELSIF OLD.check_in_time IS NULL AND NEW.check_in_time IS NOT NULL THEN\n      v_event := 'checked_in';\n    END IF;\n  END IF;\n  IF v_event IS NULL OR v_row.blocked_at IS NOT NULL THEN\n    RETURN NULL;\n  END IF;\n  PERFORM pg_notify(neonpro_feed_channel(v_row.clinic_id), json_build_object(\n    'clinic_id', v_row.clinic_id, 'appointment_id', v_row.id, 'event', v_event,\n    'status', v_row.status, 'version', v_row.version, 'patient_id', v_row.patient_id,\n    'professional_id', v_row.professional_id,\n    'rescheduled_from_id', v_row.rescheduled_from_id)::text);\n  RETURN NULL;\nEND\n$$",
)
FUNCTION_GRANTS: tuple[str, ...] = (
    'REVOKE ALL ON FUNCTION neonpro_patient_ref(uuid) FROM PUBLIC',
    'REVOKE ALL ON FUNCTION neonpro_context_mac(text, text, text, text, text, text, text, text) FROM PUBLIC',
    'REVOKE ALL ON FUNCTION neonpro_bind_context(text, text, text, text, text, text, text) FROM PUBLIC',
    'REVOKE ALL ON FUNCTION neonpro_session_context() FROM PUBLIC',
    'REVOKE ALL ON FUNCTION neonpro_chain_head(text, uuid) FROM PUBLIC',
    'REVOKE ALL ON FUNCTION neonpro_chain_seal(text, uuid, bigint, bytea, text, uuid[], bytea[]) FROM PUBLIC',
    'REVOKE ALL ON FUNCTION neonpro_audit_prune(uuid, bigint, bytea, text, text, text) FROM PUBLIC',
    'REVOKE ALL ON FUNCTION neonpro_remove_consent_evidence(uuid[], uuid[], text) FROM PUBLIC',
    'GRANT EXECUTE ON FUNCTION neonpro_patient_ref(uuid) TO {app}, {service}',
    'GRANT EXECUTE ON FUNCTION neonpro_bind_context(text, text, text, text, text, text, text) TO {app}, {service}, {legal_hold}',
    'GRANT EXECUTE ON FUNCTION neonpro_session_context() TO {app}, {service}',
    'GRANT EXECUTE ON FUNCTION neonpro_chain_head(text, uuid) TO {service}',
    'GRANT EXECUTE ON FUNCTION neonpro_chain_seal(text, uuid, bigint, bytea, text, uuid[], bytea[]) TO {service}',
    'GRANT EXECUTE ON FUNCTION neonpro_audit_prune(uuid, bigint, bytea, text, text, text) TO {service}',
    'GRANT EXECUTE ON FUNCTION neonpro_remove_consent_evidence(uuid[], uuid[], text) TO {service}',
    'REVOKE ALL ON FUNCTION neonpro_feed_channel(uuid) FROM PUBLIC',
    'REVOKE ALL ON FUNCTION neonpro_appointment_feed() FROM PUBLIC',
    'GRANT EXECUTE ON FUNCTION neonpro_feed_channel(uuid) TO {service}',
)
OWNER_POLICIES: tuple[str, ...] = (
    'CREATE POLICY erasure_ledger_owner ON erasure_ledger AS PERMISSIVE FOR ALL TO {owner} USING (true) WITH CHECK (true)',
    'CREATE POLICY consent_records_owner ON consent_records AS PERMISSIVE FOR ALL TO {owner} USING (true) WITH CHECK (true)',
    'CREATE POLICY disclosures_owner ON disclosures AS PERMISSIVE FOR ALL TO {owner} USING (true) WITH CHECK (true)',
    'CREATE POLICY audit_chain_anchors_owner ON audit_chain_anchors AS PERMISSIVE FOR ALL TO {owner} USING (true) WITH CHECK (true)',
)
LEDGER_GRANTS: tuple[str, ...] = (
    "CREATE POLICY consent_records_tenant_select ON consent_records AS PERMISSIVE FOR SELECT TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "CREATE POLICY consent_records_tenant_insert ON consent_records AS PERMISSIVE FOR INSERT TO {app} WITH CHECK (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    'GRANT SELECT, INSERT ON consent_records TO {app}',
    'GRANT SELECT, INSERT ON consent_records TO {service}',
    "CREATE POLICY consent_records_legal_hold_select ON consent_records AS PERMISSIVE FOR SELECT TO {legal_hold} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    'GRANT SELECT ON consent_records TO {legal_hold}',
    "CREATE POLICY disclosures_tenant_select ON disclosures AS PERMISSIVE FOR SELECT TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "CREATE POLICY disclosures_tenant_insert ON disclosures AS PERMISSIVE FOR INSERT TO {app} WITH CHECK (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    'GRANT SELECT, INSERT ON disclosures TO {app}',
    'GRANT SELECT, INSERT ON disclosures TO {service}',
    "CREATE POLICY disclosures_legal_hold_select ON disclosures AS PERMISSIVE FOR SELECT TO {legal_hold} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    'GRANT SELECT ON disclosures TO {legal_hold}',
    "CREATE POLICY erasure_ledger_tenant_select ON erasure_ledger AS PERMISSIVE FOR SELECT TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    'GRANT SELECT ON erasure_ledger TO {app}',
    'GRANT SELECT, INSERT ON erasure_ledger TO {service}',
)
LEDGER_TRIGGERS: tuple[str, ...] = (
    'CREATE TRIGGER audit_events_guard BEFORE UPDATE OR DELETE ON audit_events FOR EACH ROW EXECUTE FUNCTION neonpro_ledger_guard()',
    'CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events FOR EACH STATEMENT EXECUTE FUNCTION neonpro_refuse_change()',
    'ALTER TABLE audit_events ENABLE ALWAYS TRIGGER audit_events_guard',
    'ALTER TABLE audit_events ENABLE ALWAYS TRIGGER audit_events_no_truncate',
    'CREATE TRIGGER consent_records_guard BEFORE UPDATE OR DELETE ON consent_records FOR EACH ROW EXECUTE FUNCTION neonpro_ledger_guard()',
    'CREATE TRIGGER consent_records_no_truncate BEFORE TRUNCATE ON consent_records FOR EACH STATEMENT EXECUTE FUNCTION neonpro_refuse_change()',
    'ALTER TABLE consent_records ENABLE ALWAYS TRIGGER consent_records_guard',
    'ALTER TABLE consent_records ENABLE ALWAYS TRIGGER consent_records_no_truncate',
    'CREATE TRIGGER disclosures_guard BEFORE UPDATE OR DELETE ON disclosures FOR EACH ROW EXECUTE FUNCTION neonpro_ledger_guard()',
    'CREATE TRIGGER disclosures_no_truncate BEFORE TRUNCATE ON disclosures FOR EACH STATEMENT EXECUTE FUNCTION neonpro_refuse_change()',
    'ALTER TABLE disclosures ENABLE ALWAYS TRIGGER disclosures_guard',
    'ALTER TABLE disclosures ENABLE ALWAYS TRIGGER disclosures_no_truncate',
    'CREATE TRIGGER erasure_ledger_guard BEFORE UPDATE OR DELETE ON erasure_ledger FOR EACH ROW EXECUTE FUNCTION neonpro_ledger_guard()',
    'CREATE TRIGGER erasure_ledger_no_truncate BEFORE TRUNCATE ON erasure_ledger FOR EACH STATEMENT EXECUTE FUNCTION neonpro_refuse_change()',
    'ALTER TABLE erasure_ledger ENABLE ALWAYS TRIGGER erasure_ledger_guard',
    'ALTER TABLE erasure_ledger ENABLE ALWAYS TRIGGER erasure_ledger_no_truncate',
    'CREATE TRIGGER no_show_models_guard BEFORE UPDATE OR DELETE ON no_show_models FOR EACH ROW EXECUTE FUNCTION neonpro_ledger_guard()',
    'CREATE TRIGGER no_show_models_no_truncate BEFORE TRUNCATE ON no_show_models FOR EACH STATEMENT EXECUTE FUNCTION neonpro_refuse_change()',
    'ALTER TABLE no_show_models ENABLE ALWAYS TRIGGER no_show_models_guard',
    'ALTER TABLE no_show_models ENABLE ALWAYS TRIGGER no_show_models_no_truncate',
    'CREATE TRIGGER audit_chain_cuts_guard BEFORE UPDATE OR DELETE ON audit_chain_cuts FOR EACH ROW EXECUTE FUNCTION neonpro_ledger_guard()',
    'CREATE TRIGGER audit_chain_cuts_no_truncate BEFORE TRUNCATE ON audit_chain_cuts FOR EACH STATEMENT EXECUTE FUNCTION neonpro_refuse_change()',
    'ALTER TABLE audit_chain_cuts ENABLE ALWAYS TRIGGER audit_chain_cuts_guard',
    'ALTER TABLE audit_chain_cuts ENABLE ALWAYS TRIGGER audit_chain_cuts_no_truncate',
    'CREATE TRIGGER audit_chain_anchors_guard BEFORE UPDATE OR DELETE ON audit_chain_anchors FOR EACH ROW EXECUTE FUNCTION neonpro_ledger_guard()',
    'CREATE TRIGGER audit_chain_anchors_no_truncate BEFORE TRUNCATE ON audit_chain_anchors FOR EACH STATEMENT EXECUTE FUNCTION neonpro_refuse_change()',
    'ALTER TABLE audit_chain_anchors ENABLE ALWAYS TRIGGER audit_chain_anchors_guard',
    'ALTER TABLE audit_chain_anchors ENABLE ALWAYS TRIGGER audit_chain_anchors_no_truncate',
)

# frozen copies of the previous revisions, for the downgrade
OLD_FUNCTIONS: tuple[str, ...] = (
    'CREATE OR REPLACE FUNCTION neonpro_audit_canonical(e audit_events, p_seq bigint, p_prev bytea)\nRETURNS bytea LANGUAGE sql STABLE PARALLEL SAFE AS $$\n  SELECT convert_to(\'neonpro-audit-v1\'\n    || neonpro_lp(e.clinic_id::text) || neonpro_lp(p_seq::text) || neonpro_lp(e.id::text)\n    || neonpro_lp(to_char(e.occurred_at AT TIME ZONE \'UTC\', \'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\'))\n    || neonpro_lp(e.actor_id::text) || neonpro_lp(e.actor_role) || neonpro_lp(e.action)\n    || neonpro_lp(e.resource_type) || neonpro_lp(e.resource_id)\n    || neonpro_lp(encode(e.patient_ref, \'hex\')) || neonpro_lp(e.status)\n    || neonpro_lp(e.risk_level) || neonpro_lp(host(e.ip_address)) || neonpro_lp(e.user_agent)\n    || neonpro_lp(e.session_id) || neonpro_lp(e.request_id) || neonpro_lp(e.details::text)\n    || neonpro_lp(to_char(e.retain_until, \'YYYY-MM-DD\'))\n    || neonpro_lp(encode(p_prev, \'hex\')), \'UTF8\')\n$$',
    "CREATE OR REPLACE FUNCTION neonpro_audit_guard() RETURNS trigger\nLANGUAGE plpgsql AS $$\nBEGIN\n  IF TG_OP = 'UPDATE' THEN\n    IF OLD.seq IS NULL AND OLD.hash IS NULL AND NEW.seq IS NOT NULL AND NEW.hash IS NOT NULL\n       AND (to_jsonb(NEW) - ARRAY['seq', 'prev_hash', 'hash']) = (to_jsonb(OLD) - ARRAY['seq', 'prev_hash', 'hash']) THEN\n      RETURN NEW;  -- sealing: seq and hashes set once, the event itself unchanged\n    END IF;\n  ELSIF TG_OP = 'DELETE' THEN\n    IF OLD.seq IS NOT NULL AND EXISTS (SELECT 1 FROM audit_chain_cuts c\n        WHERE c.clinic_id = OLD.clinic_id AND c.seq >= OLD.seq) THEN\n      RETURN OLD;  -- pruning an archived segment below a signed cut\n    END IF;\n  END IF;\n  RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP\n    USING ERRCODE = 'insufficient_privilege';\nEND\n$$",
    'CREATE OR REPLACE FUNCTION neonpro_audit_unsealed_clinics() RETURNS SETOF uuid\nLANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$\n  SELECT DISTINCT clinic_id FROM audit_events WHERE seq IS NULL\n$$',
    "CREATE OR REPLACE FUNCTION neonpro_appointment_feed() RETURNS trigger\nLANGUAGE plpgsql AS $$\nDECLARE\n  v_row appointments;\n  v_event text;\nBEGIN\n  IF TG_OP = 'DELETE' THEN\n    v_row := OLD;\n    v_event := 'deleted';\n  ELSE\n    v_row := NEW;\n    IF TG_OP = 'INSERT' THEN\n      v_event := CASE WHEN NEW.rescheduled_from_id IS NULL THEN 'booked' ELSE 'rescheduled' END;\n    ELSIF NEW.status IS DISTINCT FROM OLD.status THEN\n      v_event := CASE NEW.status\n        WHEN 'confirmed' THEN 'confirmed' WHEN 'cancelled' THEN 'cancelled'\n        WHEN 'in_progress' THEN 'started' WHEN 'completed' THEN 'completed'\n        WHEN 'no_show' THEN 'no_show' END;\n    ELSIF OLD.check_in_time IS NULL AND NEW.check_in_time IS NOT NULL THEN\n      v_event := 'checked_in';\n    END IF;\n  END IF;\n  IF v_event IS NULL OR v_row.blocked_at IS NOT NULL THEN\n    RETURN NULL;\n  END IF;\n  PERFORM pg_notify('neonpro_appointments', json_build_object(\n    'clinic_id', v_row.clinic_id, 'appointment_id', v_row.id, 'event', v_event,\n    'status', v_row.status, 'version', v_row.version, 'patient_id', v_row.patient_id,\n    'professional_id', v_row.professional_id,\n    'rescheduled_from_id', v_row.rescheduled_from_id)::text);\n  RETURN NULL;\nEND\n$$",
    "CREATE OR REPLACE FUNCTION neonpro_audit_before_insert() RETURNS trigger\nLANGUAGE plpgsql AS $$\nBEGIN\n  IF NEW.seq IS NOT NULL OR NEW.hash IS NOT NULL OR NEW.prev_hash IS NOT NULL THEN\n    RAISE EXCEPTION 'audit events are inserted unsealed; the sealer assigns seq and hash'\n      USING ERRCODE = 'insufficient_privilege';\n  END IF;\n  -- the database stamps the time; only the owner (imports, restores) may set another\n  IF NEW.occurred_at IS NULL OR NOT pg_has_role(current_user,\n      (SELECT c.relowner FROM pg_class c WHERE c.oid = TG_RELID), 'MEMBER') THEN\n    NEW.occurred_at := now();\n  END IF;\n  NEW.retain_until := (NEW.occurred_at AT TIME ZONE 'UTC')::date\n    + neonpro_audit_retention(NEW.action, NEW.resource_type, NEW.risk_level);\n  RETURN NEW;\nEND\n$$",
    "CREATE OR REPLACE FUNCTION neonpro_audit_prune(p_clinic uuid, p_upto bigint, p_hash bytea,\n    p_archive_sha256 text, p_signature text) RETURNS bigint\nLANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$\nDECLARE\n  v_count bigint;\nBEGIN\n  PERFORM pg_advisory_xact_lock(hashtextextended('neonpro.audit.seal:' || p_clinic::text, 0));\n  IF NOT EXISTS (SELECT 1 FROM audit_events WHERE clinic_id = p_clinic AND seq = p_upto\n                 AND hash = p_hash) THEN\n    RAISE EXCEPTION 'the cut must be a sealed event of the chain' USING ERRCODE = 'data_exception';\n  END IF;\n  IF EXISTS (SELECT 1 FROM audit_events WHERE clinic_id = p_clinic AND seq <= p_upto\n             AND retain_until >= current_date) THEN\n    RAISE EXCEPTION 'events up to the cut are not all past their retention'\n      USING ERRCODE = 'data_exception';\n  END IF;\n  SELECT count(*) INTO v_count FROM audit_events WHERE clinic_id = p_clinic AND seq <= p_upto;\n  INSERT INTO audit_chain_cuts (clinic_id, seq, hash, pruned_events, archive_sha256, signature)\n    VALUES (p_clinic, p_upto, p_hash, v_count, p_archive_sha256, p_signature);\n  DELETE FROM audit_events WHERE clinic_id = p_clinic AND seq <= p_upto;\n  RETURN v_count;\nEND\n$$",
    "CREATE OR REPLACE FUNCTION neonpro_audit_seal(p_clinic uuid, p_limit integer) RETURNS integer\nLANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$\nDECLARE\n  v_seq bigint;\n  v_prev bytea;\n  v_hash bytea;\n  v_count integer := 0;\n  v_ids uuid[] := '{}';\n  v_seqs bigint[] := '{}';\n  v_prevs bytea[] := '{}';\n  v_hashes bytea[] := '{}';\n  r audit_events;\nBEGIN\n  -- one sealer per clinic at a time; writers never take this lock\n  PERFORM pg_advisory_xact_lock(hashtextextended('neonpro.audit.seal:' || p_clinic::text, 0));\n  SELECT e.seq, e.hash INTO v_seq, v_prev FROM audit_events e\n    WHERE e.clinic_id = p_clinic AND e.seq IS NOT NULL ORDER BY e.seq DESC LIMIT 1;\n  IF v_seq IS NULL THEN\n    SELECT c.seq, c.hash INTO v_seq, v_prev FROM audit_chain_cuts c\n      WHERE c.clinic_id = p_clinic ORDER BY c.seq DESC LIMIT 1;\n  END IF;\n  v_seq := coalesce(v_seq, 0);\n  FOR r IN SELECT * FROM audit_events e WHERE e.clinic_id = p_clinic AND e.seq IS NULL\n           ORDER BY e.occurred_at, e.id LIMIT p_limit LOOP\n    v_seq := v_seq + 1;\n    v_hash := sha256(neonpro_audit_canonical(r, v_seq, v_prev));\n    v_ids := v_ids || r.id;\n    v_seqs := v_seqs || v_seq;\n    v_prevs := v_prevs || v_prev;\n    v_hashes := v_hashes || v_hash;\n    v_prev := v_hash;\n    v_count := v_count + 1;\n  END LOOP;\n  -- one UPDATE for the whole batch (the guard trigger still checks every row)\n  UPDATE audit_events e SET seq = u.seq, prev_hash = u.prev, hash = u.hash\n    FROM unnest(v_ids, v_seqs, v_prevs, v_hashes) AS u(id, seq, prev, hash)\n    WHERE e.clinic_id = p_clinic AND e.id = u.id;\n  RETURN v_count;\nEND\n$$",
)
OLD_GRANTS: tuple[str, ...] = (
    'REVOKE ALL ON FUNCTION neonpro_audit_seal(uuid, integer) FROM PUBLIC',
    'REVOKE ALL ON FUNCTION neonpro_audit_unsealed_clinics() FROM PUBLIC',
    'REVOKE ALL ON FUNCTION neonpro_audit_prune(uuid, bigint, bytea, text, text) FROM PUBLIC',
    'GRANT EXECUTE ON FUNCTION neonpro_audit_seal(uuid, integer) TO {service}',
    'GRANT EXECUTE ON FUNCTION neonpro_audit_unsealed_clinics() TO {service}',
    'GRANT EXECUTE ON FUNCTION neonpro_audit_prune(uuid, bigint, bytea, text, text) TO {service}',
)
OLD_POLICIES: tuple[str, ...] = (
    "CREATE POLICY consent_records_tenant_update ON consent_records AS PERMISSIVE FOR UPDATE TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid) WITH CHECK (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "CREATE POLICY consent_records_tenant_delete ON consent_records AS PERMISSIVE FOR DELETE TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "CREATE POLICY disclosures_tenant_update ON disclosures AS PERMISSIVE FOR UPDATE TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid) WITH CHECK (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "CREATE POLICY disclosures_tenant_delete ON disclosures AS PERMISSIVE FOR DELETE TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "CREATE POLICY erasure_ledger_tenant_insert ON erasure_ledger AS PERMISSIVE FOR INSERT TO {app} WITH CHECK (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
)

# the ledgers chained like the audit trail, and the column they are sealed in order of
CHAINED_LEDGERS = (("erasure_ledger", "decided_at"), ("consent_records", "created_at"),
                   ("disclosures", "created_at"))
# functions this revision replaces by others (dropped before those are created)
REPLACED_FUNCTIONS = (
    "neonpro_audit_seal(uuid, integer)",
    "neonpro_audit_unsealed_clinics()",
    "neonpro_audit_prune(uuid, bigint, bytea, text, text)",
)
# functions of this revision only (dropped by the downgrade)
NEW_FUNCTIONS = (
    "neonpro_remove_consent_evidence(uuid[], uuid[], text)",
    "neonpro_audit_prune(uuid, bigint, bytea, text, text, text)",
    "neonpro_chain_seal(text, uuid, bigint, bytea, text, uuid[], bytea[])",
    "neonpro_chain_head(text, uuid)",
    "neonpro_session_context()",
    "neonpro_bind_context(text, text, text, text, text, text, text)",
    "neonpro_context_mac(text, text, text, text, text, text, text, text)",
    "neonpro_ledger_guard()",
)
LEDGER_POLICIES_DROPPED = (
    ("consent_records_tenant_update", "consent_records"),
    ("consent_records_tenant_delete", "consent_records"),
    ("disclosures_tenant_update", "disclosures"),
    ("disclosures_tenant_delete", "disclosures"),
    ("erasure_ledger_tenant_insert", "erasure_ledger"),
)
LEDGER_REVOKES = (
    "REVOKE UPDATE, DELETE, TRUNCATE ON consent_records FROM {app}, {service}",
    "REVOKE UPDATE, DELETE, TRUNCATE ON disclosures FROM {app}, {service}",
    "REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON erasure_ledger FROM {app}",
)
OLD_LEDGER_GRANTS = (
    "GRANT SELECT, INSERT, UPDATE, DELETE ON consent_records TO {app}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON consent_records TO {service}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON disclosures TO {app}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON disclosures TO {service}",
    "GRANT SELECT, INSERT ON erasure_ledger TO {app}",
)

# the chains sealed so far, checked with the SQL that hashed them (before it is dropped):
# the first event whose hash, link or number is wrong, if any
LEGACY_BROKEN = """
SELECT x.clinic_id, x.seq FROM (
  SELECT e.clinic_id, e.seq, e.hash, e.prev_hash,
         sha256(neonpro_audit_canonical(e, e.seq, e.prev_hash)) AS computed,
         lag(e.hash) OVER w AS before, lag(e.seq) OVER w AS before_seq,
         c.seq AS cut_seq, c.hash AS cut_hash
  FROM audit_events e
  LEFT JOIN LATERAL (SELECT k.seq, k.hash FROM audit_chain_cuts k
                     WHERE k.clinic_id = e.clinic_id ORDER BY k.seq DESC LIMIT 1) c ON true
  WHERE e.seq IS NOT NULL
  WINDOW w AS (PARTITION BY e.clinic_id ORDER BY e.seq)) x
WHERE x.hash IS DISTINCT FROM x.computed
   OR x.prev_hash IS DISTINCT FROM (CASE WHEN x.before_seq IS NULL THEN x.cut_hash
                                         ELSE x.before END)
   OR x.seq <> coalesce(x.before_seq, x.cut_seq, 0) + 1
ORDER BY x.clinic_id, x.seq LIMIT 1
"""

# the downgrade's sealer has no key: keyed events are hashed again as 0008 hashed them
REHASH_UNKEYED = """
DO $rehash$
DECLARE
  r audit_events;
  v_clinic uuid;
  v_prev bytea;
  v_hash bytea;
BEGIN
  FOR r IN SELECT * FROM audit_events WHERE seq IS NOT NULL ORDER BY clinic_id, seq LOOP
    IF v_clinic IS DISTINCT FROM r.clinic_id THEN
      v_clinic := r.clinic_id;
      v_prev := r.prev_hash;
    END IF;
    IF r.key_id IS NULL THEN
      v_hash := r.hash;
    ELSE
      v_hash := sha256(neonpro_audit_canonical(r, r.seq, v_prev));
      UPDATE audit_events SET prev_hash = v_prev, hash = v_hash, key_id = NULL
        WHERE clinic_id = r.clinic_id AND id = r.id;
    END IF;
    v_prev := v_hash;
  END LOOP;
END
$rehash$
"""


def _sql(statement: str) -> str:
    roles = migration_roles()
    return (statement.replace("{owner}", roles.owner).replace("{app}", roles.app)
            .replace("{service}", roles.service).replace("{legal_hold}", roles.legal_hold))


def _run(statements: Sequence[str]) -> None:
    """Each statement; a policy or trigger is dropped first if it exists (whatever the
    neighbouring revisions did)."""
    for statement in statements:
        words = statement.split()
        if words[:2] in (["CREATE", "POLICY"], ["CREATE", "TRIGGER"]):
            table = words[words.index("ON") + 1]
            op.execute(f"DROP {words[1]} IF EXISTS {words[2]} ON {table}")
        op.execute(_sql(statement))


def _anchor_sealed_chains() -> None:
    """Sign the head of every chain sealed before audit keys (``audit_chain_anchors``)."""
    bind = op.get_bind()
    heads = bind.execute(sa.text(
        "SELECT DISTINCT ON (clinic_id) clinic_id, seq, hash FROM audit_events "
        "WHERE seq IS NOT NULL ORDER BY clinic_id, seq DESC")).all()
    if not heads:
        return
    key = context.config.attributes.get("audit_key")
    if key is None:
        raise RuntimeError(
            "revision 0011 signs the audit chains sealed so far with the audit key: run it "
            "with `neonpro db upgrade`, which loads the key ring")
    broken = bind.execute(sa.text(LEGACY_BROKEN)).first()
    if broken is not None:
        raise RuntimeError(
            f"the audit chain of clinic {broken[0]} is broken at seq {broken[1]}: it was "
            "altered before this upgrade, and the upgrade will not sign it; investigate "
            "with `neonpro audit verify` of the previous version")
    key_id, secret = key
    for row in heads:
        clinic, seq, head = uuid.UUID(str(row[0])), int(row[1]), bytes(row[2])
        bind.execute(sa.text(
            "INSERT INTO audit_chain_anchors (clinic_id, seq, hash, key_id, signature) "
            "VALUES (:c, :s, :h, :k, :sig)"), {
                "c": clinic, "s": seq, "h": head, "k": key_id,
                "sig": sign_head(secret, key_id, "audit_events", clinic, seq, head)})


def upgrade() -> None:
    op.add_column('audit_events', sa.Column('key_id', sa.Text(), nullable=True, comment='the audit key of the hash (NULL: unkeyed, sealed before audit keys)'))
    op.add_column('audit_chain_cuts', sa.Column('key_id', sa.Text(), nullable=True, comment='the audit key of the signature (NULL: the key of before key ids)'))
    for table, order in CHAINED_LEDGERS:  # their rows so far are sealed by the next sealer
        op.add_column(table, sa.Column('seq', sa.BigInteger(), nullable=True, comment='NULL until sealed'))
        op.add_column(table, sa.Column('prev_hash', sa.LargeBinary(), nullable=True))
        op.add_column(table, sa.Column('hash', sa.LargeBinary(), nullable=True))
        op.add_column(table, sa.Column('key_id', sa.Text(), nullable=True, comment='the audit key of the hash'))
        op.create_unique_constraint(op.f(f'uq_{table}_clinic_id_seq'), table, ['clinic_id', 'seq'])
        op.create_check_constraint(op.f(f'ck_{table}_seq_positive'), table, 'seq >= 1')
        op.create_index(f'ix_{table}_unsealed', table, ['clinic_id', order, 'id'], unique=False, postgresql_where=sa.text('seq IS NULL'))
    op.create_table('audit_chain_anchors',
    sa.Column('clinic_id', sa.UUID(), nullable=False, comment='tenant, or the nil UUID for the system chain; no FK on purpose'),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('hash', sa.LargeBinary(), nullable=False),
    sa.Column('key_id', sa.Text(), nullable=False),
    sa.Column('signature', sa.Text(), nullable=False, comment='HMAC-SHA256 of the head, hex'),
    sa.Column('anchored_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('seq >= 1', name=op.f('ck_audit_chain_anchors_seq_positive')),
    sa.PrimaryKeyConstraint('clinic_id', name=op.f('pk_audit_chain_anchors')),
    info={'scope': 'tenant'}
    )
    _run(ANCHOR_TABLE_SQL)
    _run(OWNER_POLICIES)
    _anchor_sealed_chains()
    for trigger in ("audit_events_guard", "audit_events_no_truncate"):
        op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON audit_events")
    for function in (*REPLACED_FUNCTIONS, "neonpro_audit_guard()",
                     "neonpro_audit_canonical(audit_events, bigint, bytea)"):
        op.execute(f"DROP FUNCTION IF EXISTS {function}")
    _run(FUNCTIONS)
    _run(FUNCTION_GRANTS)
    for policy, table in LEDGER_POLICIES_DROPPED:
        op.execute(f"DROP POLICY IF EXISTS {policy} ON {table}")
    _run(LEDGER_REVOKES)
    _run(LEDGER_GRANTS)
    _run(LEDGER_TRIGGERS)


def downgrade() -> None:
    for statement in LEDGER_TRIGGERS:
        words = statement.split()
        if words[:2] == ["CREATE", "TRIGGER"]:
            op.execute(f"DROP TRIGGER IF EXISTS {words[2]} ON {words[words.index('ON') + 1]}")
    _run(OLD_FUNCTIONS)
    op.execute(REHASH_UNKEYED)
    op.execute("CREATE TRIGGER audit_events_guard BEFORE UPDATE OR DELETE ON audit_events "
               "FOR EACH ROW EXECUTE FUNCTION neonpro_audit_guard()")
    op.execute("CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
               "FOR EACH STATEMENT EXECUTE FUNCTION neonpro_refuse_change()")
    for function in (*NEW_FUNCTIONS, "neonpro_feed_channel(uuid)"):
        op.execute(f"DROP FUNCTION IF EXISTS {function}")
    _run(OLD_GRANTS)
    for policy in ("erasure_ledger_owner ON erasure_ledger", "disclosures_owner ON disclosures",
                   "consent_records_owner ON consent_records"):
        op.execute(f"DROP POLICY IF EXISTS {policy}")
    _run(OLD_POLICIES)
    _run(OLD_LEDGER_GRANTS)
    op.drop_table('audit_chain_anchors')
    for table, _order in CHAINED_LEDGERS:
        op.drop_index(f'ix_{table}_unsealed', table_name=table, postgresql_where=sa.text('seq IS NULL'))
        op.drop_constraint(op.f(f'ck_{table}_seq_positive'), table, type_='check')
        op.drop_constraint(op.f(f'uq_{table}_clinic_id_seq'), table, type_='unique')
        for column in ('key_id', 'hash', 'prev_hash', 'seq'):
            op.drop_column(table, column)
    op.drop_column('audit_chain_cuts', 'key_id')
    op.drop_column('audit_events', 'key_id')
