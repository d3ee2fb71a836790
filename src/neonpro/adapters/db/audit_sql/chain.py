"""The chains' sealing: a chain's head under its lock, appending seals, pruning below a cut."""

from __future__ import annotations

from neonpro.adapters.db.audit_sql.names import CHAINS


def chain_functions() -> list[str]:
    """The head of a chain under its sealing lock, and appending seals after it."""
    return [_chain_head(), _chain_seal()]


def _chain_head() -> str:
    """A chain's last seal, taking the chain's sealing lock."""
    chains = ", ".join(f"'{c}'" for c in CHAINS)
    return f"""CREATE FUNCTION neonpro_chain_head(p_chain text, p_clinic uuid, OUT seq bigint,
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
$$"""


def _chain_seal() -> str:
    """Writing the next seals after the head, one UPDATE per batch."""
    return """CREATE FUNCTION neonpro_chain_seal(p_chain text, p_clinic uuid, p_after_seq bigint,
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
$$"""


def audit_prune() -> str:
    """Deleting sealed events past retention below a signed cut."""
    return """CREATE FUNCTION neonpro_audit_prune(p_clinic uuid, p_upto bigint, p_hash bytea,
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
  -- the pruning goes into the clinic's chain in the same transaction, written by the same
  -- role as the deletion (on Citus a shard written by one role may not be written by
  -- another in that transaction)
  INSERT INTO audit_events (clinic_id, action, resource_type, details)
  VALUES (p_clinic, 'RETENTION', 'audit_events', jsonb_build_object(
    'pruned', v_count, 'upto_seq', p_upto, 'archive_sha256', p_archive_sha256));
  RETURN v_count;
END
$$"""
