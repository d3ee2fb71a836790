"""The audit trail in the database: row-change triggers, guards, sealing, the bound context.

Part of the expected DDL (see ``security.py``); migrations carry frozen copies.

What the database does, and what it leaves to the process that holds the audit key:

* **Inserting.** Events are inserted unsealed. ``neonpro_audit_before_insert`` takes the
  actor, role, request, address, agent and session of every event from the transaction's
  bound context (``neonpro_session_context``) and refuses an insert naming others; the
  clinic is the transaction's (events of a row-change trigger: the changed row's).
* **Binding the context.** ``neonpro_bind_context`` sets the ``app.*`` settings as the
  first statement of a transaction and stores an HMAC of them and of the transaction's
  id (``app.context``), keyed with a key only the owner can read (``audit_ref_keys``).
  A later ``set_config('app.clinic_id', ...)`` in the same transaction breaks the HMAC, and
  binding again is refused (the transaction already has an id), so SQL running on an
  application connection cannot write audit events (nor audited changes) as another
  clinic or actor.
* **Sealing.** The database never holds the audit key: the sealer (Python, with the key)
  reads a chain's head and its unsealed entries under a per-clinic lock
  (``neonpro_chain_head``), computes each HMAC, and writes them through
  ``neonpro_chain_seal``, which only accepts the next sequence numbers after the current
  head with the head's hash as ``prev_hash``. Without the key nobody can produce hashes
  that verify; the service role can at worst write wrong ones, which ``verify`` reports.
* **Guards.** ``neonpro_ledger_guard`` refuses UPDATE and DELETE on every ledger for every
  role, owner included (sealing an entry once and pruning below a signed cut excepted);
  TRUNCATE is refused by statement triggers. Both fire ``ALWAYS`` (also under
  ``session_replication_role = replica``).

Canonical encodings: ``neonpro.domain.audit_chain``.
"""

from __future__ import annotations

from neonpro.adapters.db.security import GUARDED_TABLES, Roles

# Tables whose every INSERT, UPDATE and DELETE is recorded by a trigger, whoever runs it.
AUDITED_TABLES = (
    "patients", "appointments", "consent_records", "disclosures", "data_subject_requests",
    "professionals", "staff_users", "clinic_memberships", "security_incidents",
)
# Columns whose change alone is bookkeeping, not a change of personal data.
IGNORED_FIELDS = ("updated_at", "updated_by", "version", "search_name")
SEAL_COLUMNS = ("seq", "prev_hash", "hash", "key_id")
# the chained tables (each clinic has one chain in each; audit_text.LEDGER_SPECS)
CHAINS = ("audit_events", "erasure_ledger", "consent_records", "disclosures")
# what the law may require removing from a consent row, and why (erasure, retention)
EVIDENCE_REMOVED = ("erasure", "retention")
LP = "neonpro_lp"
NIL = "'00000000-0000-0000-0000-000000000000'::uuid"
# the HMAC of the patient-ref key (owner only): patient refs, bound contexts, feed channels
_HMAC = "sha256(k.outer_pad || sha256(k.inner_pad || convert_to({message}, 'UTF8')))"
_KEY = "FROM audit_ref_keys k WHERE k.id = 1"
_CONTEXT_FIELDS = ("clinic_id", "actor_id", "actor_role", "request_id", "ip", "user_agent",
                   "session_id")


def _context_functions() -> list[str]:
    """Binding the transaction's context, and reading it back verified."""
    args = ", ".join(f"p_{f} text" for f in _CONTEXT_FIELDS)
    mac_args = "p_xid text, " + args
    message = ("'neonpro-context-v1' || neonpro_lp(p_xid) || "
               + " || ".join(f"neonpro_lp(p_{f})" for f in _CONTEXT_FIELDS))
    sets = ",\n    ".join(f"set_config('app.{f}', coalesce(p_{f}, ''), true)"
                         for f in _CONTEXT_FIELDS)
    current = ", ".join(f"coalesce(current_setting('app.{f}', true), '')"
                        for f in _CONTEXT_FIELDS)
    given = ", ".join(f"coalesce(p_{f}, '')" for f in _CONTEXT_FIELDS)
    return [
        f"""CREATE FUNCTION neonpro_context_mac({mac_args}) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT encode({_HMAC.format(message=message)}, 'hex') {_KEY}
$$""",
        """CREATE FUNCTION neonpro_session_live(p_token_id text, p_user_id uuid,
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
$$""",
        f"""CREATE FUNCTION neonpro_bind_context({args}) RETURNS void
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
  PERFORM {sets},
    set_config('app.context', neonpro_context_mac(pg_current_xact_id()::text, {given}), true);
END
$$""",
        f"""CREATE FUNCTION neonpro_session_context(OUT clinic_id uuid, OUT actor_id uuid,
    OUT actor_role text, OUT request_id text, OUT ip inet, OUT user_agent text,
    OUT session_id text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  v_xid xid8 := pg_current_xact_id_if_assigned();
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
$$""",
    ]


def _chain_functions() -> list[str]:
    """The head of a chain under its sealing lock, and appending seals after it."""
    chains = ", ".join(f"'{c}'" for c in CHAINS)
    return [
        f"""CREATE FUNCTION neonpro_chain_head(p_chain text, p_clinic uuid, OUT seq bigint,
    OUT hash bytea)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  IF p_chain IS NULL OR p_chain NOT IN ({chains}) THEN
    RAISE EXCEPTION 'no chain %', p_chain USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- one sealer per chain at a time (held until the transaction ends); writers never wait
  PERFORM pg_advisory_xact_lock(hashtextextended(
    CASE p_chain WHEN 'audit_events' THEN 'neonpro.audit.seal:'
    ELSE 'neonpro.chain.seal:' || p_chain || ':' END || p_clinic::text, 0));
  EXECUTE format('SELECT e.seq, e.hash FROM %I e WHERE e.clinic_id = $1 AND e.seq IS NOT NULL '
                 'ORDER BY e.seq DESC LIMIT 1', p_chain) INTO seq, hash USING p_clinic;
  IF seq IS NULL AND p_chain = 'audit_events' THEN  -- everything pruned: the cut's head
    SELECT c.seq, c.hash INTO seq, hash FROM audit_chain_cuts c
      WHERE c.clinic_id = p_clinic ORDER BY c.seq DESC LIMIT 1;
  END IF;
  seq := coalesce(seq, 0);
END
$$""",
        """CREATE FUNCTION neonpro_chain_seal(p_chain text, p_clinic uuid, p_after_seq bigint,
    p_after_hash bytea, p_key_id text, p_ids uuid[], p_hashes bytea[]) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  v_head record;
  v_count integer;
BEGIN
  SELECT * INTO v_head FROM neonpro_chain_head(p_chain, p_clinic);
  IF v_head.seq <> p_after_seq OR v_head.hash IS DISTINCT FROM p_after_hash THEN
    RAISE EXCEPTION 'the chain is at seq %, not %: seal after its head', v_head.seq,
      p_after_seq USING ERRCODE = 'serialization_failure';
  END IF;
  IF p_key_id IS NULL OR p_key_id !~ '^[A-Za-z0-9_-]{1,32}$' THEN
    RAISE EXCEPTION 'a seal names its audit key' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF cardinality(p_ids) IS DISTINCT FROM cardinality(p_hashes) OR EXISTS (
      SELECT FROM unnest(p_hashes) h WHERE h IS NULL OR octet_length(h) <> 32) THEN
    RAISE EXCEPTION 'one 32-byte hash per entry' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- one UPDATE for the whole batch (the guard trigger still checks every row)
  EXECUTE format('UPDATE %I e SET seq = $3 + u.n, hash = u.h, key_id = $5, '
                 'prev_hash = CASE WHEN u.n = 1 THEN $4 ELSE $6[u.n - 1] END '
                 'FROM unnest($1::uuid[], $6::bytea[]) WITH ORDINALITY AS u(id, h, n) '
                 'WHERE e.clinic_id = $2 AND e.id = u.id AND e.seq IS NULL', p_chain)
    USING p_ids, p_clinic, p_after_seq, p_after_hash, p_key_id, p_hashes;
  GET DIAGNOSTICS v_count = ROW_COUNT;
  IF v_count <> coalesce(cardinality(p_ids), 0) THEN
    RAISE EXCEPTION 'only unsealed entries of the clinic are sealed, each once'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN v_count;
END
$$""",
    ]


def _functions(roles: Roles) -> list[str]:
    ignored = ", ".join(f"'{c}'" for c in IGNORED_FIELDS)
    seal = ", ".join(f"'{c}'" for c in SEAL_COLUMNS)
    chains = ", ".join(f"'{c}'" for c in CHAINS)
    removed = ", ".join(f"""'{{"removed": "{r}"}}'::jsonb""" for r in EVIDENCE_REMOVED)
    reasons = ", ".join(f"'{r}'" for r in EVIDENCE_REMOVED)
    fields = ("actor_id", "actor_role", "request_id", "ip_address", "user_agent", "session_id")
    from_context = "\n".join(
        f"""  IF NEW.{f} IS NULL THEN
    NEW.{f} := v_ctx.{'ip' if f == 'ip_address' else f};
  ELSIF NEW.{f} IS DISTINCT FROM v_ctx.{'ip' if f == 'ip_address' else f} THEN
    RAISE EXCEPTION 'an audit event''s {f} is the transaction''s own'
      USING ERRCODE = 'insufficient_privilege';
  END IF;""" for f in fields)
    return [
        f"""CREATE FUNCTION {LP}(v text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN v IS NULL THEN '~' ELSE octet_length(v)::text || ':' || v END
$$""",
        # retention by category (domain.md): 10 years for patient and clinical records,
        # 7 for critical security events, 5 for authentication, 6 at least for any access
        # to health data, 3 for the rest
        """CREATE FUNCTION neonpro_audit_retention(p_action text, p_resource text, p_risk text)
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
$$""",
        """CREATE FUNCTION neonpro_patient_ref(p_patient uuid) RETURNS bytea
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT CASE WHEN p_patient IS NULL THEN NULL ELSE
    sha256(k.outer_pad || sha256(k.inner_pad
      || convert_to('patient_ref:' || p_patient::text, 'UTF8'))) END
  FROM audit_ref_keys k WHERE k.id = 1
$$""",
        *_context_functions(),
        f"""CREATE FUNCTION neonpro_audit_before_insert() RETURNS trigger
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
$$""",
        f"""CREATE FUNCTION neonpro_ledger_guard() RETURNS trigger
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
    IF TG_TABLE_NAME = 'consent_records' AND current_user = (SELECT pg_get_userbyid(c.relowner)
         FROM pg_class c WHERE c.oid = TG_RELID)
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
$$""",
        f"""CREATE FUNCTION neonpro_audit_row_change() RETURNS trigger
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
      jsonb_build_object('fields', to_jsonb(v_fields), 'source', 'trigger'));
  RETURN NULL;
END
$$""",
        *_chain_functions(),
        """CREATE FUNCTION neonpro_audit_prune(p_clinic uuid, p_upto bigint, p_hash bytea,
    p_archive_sha256 text, p_key_id text, p_signature text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  v_count bigint;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtextextended('neonpro.audit.seal:' || p_clinic::text, 0));
  IF NOT EXISTS (SELECT 1 FROM audit_events WHERE clinic_id = p_clinic AND seq = p_upto
                 AND hash = p_hash) THEN
    RAISE EXCEPTION 'the cut must be a sealed event of the chain' USING ERRCODE = 'data_exception';
  END IF;
  IF EXISTS (SELECT 1 FROM audit_events WHERE clinic_id = p_clinic AND seq <= p_upto
             AND retain_until >= current_date) THEN
    RAISE EXCEPTION 'events up to the cut are not all past their retention'
      USING ERRCODE = 'data_exception';
  END IF;
  SELECT count(*) INTO v_count FROM audit_events WHERE clinic_id = p_clinic AND seq <= p_upto;
  INSERT INTO audit_chain_cuts (clinic_id, seq, hash, pruned_events, archive_sha256,
      signature, key_id)
    VALUES (p_clinic, p_upto, p_hash, v_count, p_archive_sha256, p_signature, p_key_id);
  DELETE FROM audit_events WHERE clinic_id = p_clinic AND seq <= p_upto;
  RETURN v_count;
END
$$""",
        f"""CREATE FUNCTION neonpro_remove_consent_evidence(p_patients uuid[], p_ids uuid[],
    p_reason text) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  v_clinic uuid := (SELECT clinic_id FROM neonpro_session_context());
  v_count integer;
BEGIN
  IF p_reason IS NULL OR p_reason NOT IN ({reasons}) THEN
    RAISE EXCEPTION 'consent evidence is removed on erasure or retention only'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF v_clinic IS NULL THEN
    RAISE EXCEPTION 'consent evidence is removed in one clinic''s transaction'
      USING ERRCODE = 'insufficient_privilege';
  END IF;
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
$$""",
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
