"""The audit trail in the database: row-change triggers, the guard, sealing, patient refs.

Part of the expected DDL (see ``security.py``); migrations carry frozen copies.

Canonical encoding of an event (``neonpro_audit_canonical``; mirrored in Python by
``neonpro.adapters.audit.chain.canonical``): the text ``neonpro-audit-v1`` followed by
each field length-prefixed as ``<octets>:<value>`` (NULL is ``~``), in this order:
clinic_id, seq, id, occurred_at (UTC, ``YYYY-MM-DDTHH:MM:SS.ffffffZ``), actor_id,
actor_role, action, resource_type, resource_id, patient_ref (hex), status, risk_level,
ip_address (``host()``), user_agent, session_id, request_id, details (jsonb text: keys
ordered by length then bytes), retain_until (``YYYY-MM-DD``), prev_hash (hex).
``hash = sha256(canonical)``. Nothing depends on the session's time zone or locale.
"""

from __future__ import annotations

from neonpro.adapters.db.security import Roles

# Tables whose every INSERT, UPDATE and DELETE is recorded by a trigger, whoever runs it.
AUDITED_TABLES = (
    "patients", "appointments", "consent_records", "disclosures", "data_subject_requests",
    "professionals", "staff_users", "clinic_memberships", "security_incidents",
)
# Columns whose change alone is bookkeeping, not a change of personal data.
IGNORED_FIELDS = ("updated_at", "updated_by", "version", "search_name")
SEAL_COLUMNS = ("seq", "prev_hash", "hash")
LP = "neonpro_lp"


def _functions(roles: Roles) -> list[str]:
    ignored = ", ".join(f"'{c}'" for c in IGNORED_FIELDS)
    seal = ", ".join(f"'{c}'" for c in SEAL_COLUMNS)
    return [
        f"""CREATE FUNCTION {LP}(v text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN v IS NULL THEN '~' ELSE octet_length(v)::text || ':' || v END
$$""",
        """CREATE FUNCTION neonpro_audit_canonical(e audit_events, p_seq bigint, p_prev bytea)
RETURNS bytea LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT convert_to('neonpro-audit-v1'
    || neonpro_lp(e.clinic_id::text) || neonpro_lp(p_seq::text) || neonpro_lp(e.id::text)
    || neonpro_lp(to_char(e.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
    || neonpro_lp(e.actor_id::text) || neonpro_lp(e.actor_role) || neonpro_lp(e.action)
    || neonpro_lp(e.resource_type) || neonpro_lp(e.resource_id)
    || neonpro_lp(encode(e.patient_ref, 'hex')) || neonpro_lp(e.status)
    || neonpro_lp(e.risk_level) || neonpro_lp(host(e.ip_address)) || neonpro_lp(e.user_agent)
    || neonpro_lp(e.session_id) || neonpro_lp(e.request_id) || neonpro_lp(e.details::text)
    || neonpro_lp(to_char(e.retain_until, 'YYYY-MM-DD'))
    || neonpro_lp(encode(p_prev, 'hex')), 'UTF8')
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
        """CREATE FUNCTION neonpro_audit_before_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.seq IS NOT NULL OR NEW.hash IS NOT NULL OR NEW.prev_hash IS NOT NULL THEN
    RAISE EXCEPTION 'audit events are inserted unsealed; the sealer assigns seq and hash'
      USING ERRCODE = 'insufficient_privilege';
  END IF;
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
        f"""CREATE FUNCTION neonpro_audit_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' THEN
    IF OLD.seq IS NULL AND OLD.hash IS NULL AND NEW.seq IS NOT NULL AND NEW.hash IS NOT NULL
       AND (to_jsonb(NEW) - ARRAY[{seal}]) = (to_jsonb(OLD) - ARRAY[{seal}]) THEN
      RETURN NEW;  -- sealing: seq and hashes set once, the event itself unchanged
    END IF;
  ELSIF TG_OP = 'DELETE' THEN
    IF OLD.seq IS NOT NULL AND EXISTS (SELECT 1 FROM audit_chain_cuts c
        WHERE c.clinic_id = OLD.clinic_id AND c.seq >= OLD.seq) THEN
      RETURN OLD;  -- pruning an archived segment below a signed cut
    END IF;
  END IF;
  RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP
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
  v_clinic := coalesce((v_row ->> 'clinic_id')::uuid, '00000000-0000-0000-0000-000000000000');
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
        """CREATE FUNCTION neonpro_audit_seal(p_clinic uuid, p_limit integer) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  v_seq bigint;
  v_prev bytea;
  v_hash bytea;
  v_count integer := 0;
  v_ids uuid[] := '{}';
  v_seqs bigint[] := '{}';
  v_prevs bytea[] := '{}';
  v_hashes bytea[] := '{}';
  r audit_events;
BEGIN
  -- one sealer per clinic at a time; writers never take this lock
  PERFORM pg_advisory_xact_lock(hashtextextended('neonpro.audit.seal:' || p_clinic::text, 0));
  SELECT e.seq, e.hash INTO v_seq, v_prev FROM audit_events e
    WHERE e.clinic_id = p_clinic AND e.seq IS NOT NULL ORDER BY e.seq DESC LIMIT 1;
  IF v_seq IS NULL THEN
    SELECT c.seq, c.hash INTO v_seq, v_prev FROM audit_chain_cuts c
      WHERE c.clinic_id = p_clinic ORDER BY c.seq DESC LIMIT 1;
  END IF;
  v_seq := coalesce(v_seq, 0);
  FOR r IN SELECT * FROM audit_events e WHERE e.clinic_id = p_clinic AND e.seq IS NULL
           ORDER BY e.occurred_at, e.id LIMIT p_limit LOOP
    v_seq := v_seq + 1;
    v_hash := sha256(neonpro_audit_canonical(r, v_seq, v_prev));
    v_ids := v_ids || r.id;
    v_seqs := v_seqs || v_seq;
    v_prevs := v_prevs || v_prev;
    v_hashes := v_hashes || v_hash;
    v_prev := v_hash;
    v_count := v_count + 1;
  END LOOP;
  -- one UPDATE for the whole batch (the guard trigger still checks every row)
  UPDATE audit_events e SET seq = u.seq, prev_hash = u.prev, hash = u.hash
    FROM unnest(v_ids, v_seqs, v_prevs, v_hashes) AS u(id, seq, prev, hash)
    WHERE e.clinic_id = p_clinic AND e.id = u.id;
  RETURN v_count;
END
$$""",
        """CREATE FUNCTION neonpro_audit_prune(p_clinic uuid, p_upto bigint, p_hash bytea,
    p_archive_sha256 text, p_signature text) RETURNS bigint
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
  INSERT INTO audit_chain_cuts (clinic_id, seq, hash, pruned_events, archive_sha256, signature)
    VALUES (p_clinic, p_upto, p_hash, v_count, p_archive_sha256, p_signature);
  DELETE FROM audit_events WHERE clinic_id = p_clinic AND seq <= p_upto;
  RETURN v_count;
END
$$""",
        """CREATE FUNCTION neonpro_audit_unsealed_clinics() RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT DISTINCT clinic_id FROM audit_events WHERE seq IS NULL
$$""",
        "REVOKE ALL ON FUNCTION neonpro_patient_ref(uuid) FROM PUBLIC",
        "REVOKE ALL ON FUNCTION neonpro_audit_seal(uuid, integer) FROM PUBLIC",
        "REVOKE ALL ON FUNCTION neonpro_audit_unsealed_clinics() FROM PUBLIC",
        "REVOKE ALL ON FUNCTION neonpro_audit_prune(uuid, bigint, bytea, text, text) FROM PUBLIC",
        f"GRANT EXECUTE ON FUNCTION neonpro_patient_ref(uuid) TO {roles.app}, {roles.service}",
        f"GRANT EXECUTE ON FUNCTION neonpro_audit_seal(uuid, integer) TO {roles.service}",
        f"GRANT EXECUTE ON FUNCTION neonpro_audit_unsealed_clinics() TO {roles.service}",
        f"GRANT EXECUTE ON FUNCTION neonpro_audit_prune(uuid, bigint, bytea, text, text) "
        f"TO {roles.service}",
    ]


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
        "CREATE TRIGGER audit_events_before_insert BEFORE INSERT ON audit_events "
        "FOR EACH ROW EXECUTE FUNCTION neonpro_audit_before_insert()",
        "CREATE TRIGGER audit_events_guard BEFORE UPDATE OR DELETE ON audit_events "
        "FOR EACH ROW EXECUTE FUNCTION neonpro_audit_guard()",
        "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
        "FOR EACH STATEMENT EXECUTE FUNCTION neonpro_refuse_change()",
    ]
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
