"""The consent ledger's state, computed in one place by the database: ``neonpro_consent_state``.

**The rule.** For each patient and purpose, the *latest decision* wins. Decisions are the
ledger's grants and revocations; the latest is the one with the highest ``entry_no`` (the
order rows entered the ledger, given by a sequence at insert: never the wall clock, so two
rows of one transaction are ordered too). The state of the purpose is then:

* ``withdrawn``: the latest decision is a revocation, whichever grant it revoked (revoking
  an older grant withdraws the purpose: only a grant *after* the revocation restores it);
* ``expired``: the latest decision is a grant past its ``expires_at``, or one an ``expired``
  row supersedes (the expiry of an older grant changes nothing while a newer one is in force);
* ``given``: the latest decision is a grant in force;
* no row for the purpose: no decision (``pending``).

Everything that reads consent state uses this function: the consent gate
(``require_consent``), the patient's summary kept by the trigger below, the LGPD
confirmation, the JSON and FHIR exports, and the compliance check.

``patients.data_consent_status`` and ``data_consent_version`` summarise the states and must
never disagree with the ledger, so a trigger recomputes them whenever a ledger row is
appended (by the services or by raw SQL), in the same transaction, after locking the
patient's row (so of two concurrent appends the later sees the earlier): ``given`` if some purpose
is given, else ``expired`` if some purpose expired, else ``withdrawn`` if some purpose was
withdrawn, else ``pending``; the version is that of the latest grant in force.

``entry_no`` is assigned by a trigger (from a sequence only the owner uses), whatever the
insert says, so nobody can slip a row in "later" than decisions still to come; the ledger
guard refuses changing it like any other column.
"""

from __future__ import annotations

# not OWNED BY the column: pg_dump would then dump it with the table, as the service role
# that may not read it; as an owner-only relation the backup's owner dump carries it
ENTRY_SEQUENCE = "CREATE SEQUENCE consent_records_entry_no_seq"

ENTRY_FUNCTION = """CREATE FUNCTION neonpro_consent_entry_no() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  -- the ledger's order: assigned here, never taken from the insert
  NEW.entry_no := nextval('consent_records_entry_no_seq');
  RETURN NEW;
END
$$"""

ENTRY_TRIGGER = (
    "CREATE TRIGGER consent_records_entry_no BEFORE INSERT ON consent_records "
    "FOR EACH ROW EXECUTE FUNCTION neonpro_consent_entry_no()"
)

# invoker's rights (row-level security applies) and inlinable: a caller's
# ``WHERE patient_id = ...`` reaches the index on (clinic, patient, purpose, entry_no).
# ``p_now``: the time expiry is judged at (the transaction's, unless a report says another)
STATE_FUNCTION = """CREATE FUNCTION neonpro_consent_state(p_now timestamptz DEFAULT now())
RETURNS TABLE (
    clinic_id uuid, patient_id uuid, purpose text, state text, decision text,
    decision_id uuid, entry_no bigint, decided_at timestamptz, legal_basis text,
    terms_version text, given_at timestamptz, expires_at timestamptz, data_categories text[],
    expiry_recorded boolean)
LANGUAGE sql STABLE AS $$
  SELECT d.clinic_id, d.patient_id, d.purpose,
    CASE WHEN d.status = 'revoked' THEN 'withdrawn'
         WHEN d.expiry_recorded OR d.expires_at <= p_now THEN 'expired'
         ELSE 'given' END,
    d.status, d.id, d.entry_no,
    CASE WHEN d.status = 'revoked' THEN d.revoked_at ELSE d.given_at END,
    d.legal_basis, d.terms_version, d.given_at, d.expires_at, d.data_categories,
    d.expiry_recorded
  FROM (
    SELECT DISTINCT ON (c.clinic_id, c.patient_id, c.purpose) c.clinic_id, c.patient_id,
      c.purpose, c.status, c.id, c.entry_no, c.given_at, c.revoked_at, c.expires_at,
      c.legal_basis, c.terms_version, c.data_categories,
      c.status = 'granted' AND EXISTS (SELECT 1 FROM consent_records x
        WHERE x.clinic_id = c.clinic_id AND x.supersedes_id = c.id
          AND x.status = 'expired') AS expiry_recorded
    FROM consent_records c
    WHERE c.status IN ('granted', 'revoked')
    ORDER BY c.clinic_id, c.patient_id, c.purpose, c.entry_no DESC
  ) d
$$"""

SUMMARY_FUNCTION = """CREATE FUNCTION neonpro_consent_summary() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  v_status text;
  v_version text;
BEGIN
  -- one summary writer per patient at a time: a concurrent append waits here until the
  -- other commits, and the statements below (read committed: a snapshot each) see its row.
  -- NO KEY UPDATE: the appends' foreign-key checks hold KEY SHARE, which it lets be
  PERFORM 1 FROM patients WHERE clinic_id = NEW.clinic_id AND id = NEW.patient_id
    FOR NO KEY UPDATE;
  -- the states of the patient's purposes (neonpro_consent_state: the latest decision wins)
  SELECT CASE
      WHEN bool_or(s.state = 'given') THEN 'given'
      WHEN bool_or(s.state = 'expired') THEN 'expired'
      WHEN bool_or(s.state = 'withdrawn') THEN 'withdrawn'
      ELSE 'pending' END,
    (array_agg(s.terms_version ORDER BY s.entry_no DESC) FILTER (WHERE s.state = 'given'))[1]
  INTO v_status, v_version
  FROM neonpro_consent_state() s
  WHERE s.clinic_id = NEW.clinic_id AND s.patient_id = NEW.patient_id;
  UPDATE patients SET data_consent_status = coalesce(v_status, 'pending'),
                      data_consent_version = v_version
   WHERE clinic_id = NEW.clinic_id AND id = NEW.patient_id
     AND (data_consent_status IS DISTINCT FROM coalesce(v_status, 'pending')
          OR data_consent_version IS DISTINCT FROM v_version);
  RETURN NULL;
END
$$"""

SUMMARY_TRIGGER = (
    "CREATE TRIGGER consent_records_summary AFTER INSERT ON consent_records "
    "FOR EACH ROW EXECUTE FUNCTION neonpro_consent_summary()"
)


def consent_ddl() -> list[str]:
    return [ENTRY_SEQUENCE, ENTRY_FUNCTION, ENTRY_TRIGGER, STATE_FUNCTION, SUMMARY_FUNCTION,
            SUMMARY_TRIGGER]
