"""The consent ledger's summary on the patient, kept by the database itself.

``patients.data_consent_status`` and ``data_consent_version`` summarise the ledger and must
never disagree with it, so a trigger recomputes them whenever a ledger row is appended
(by the services or by raw SQL), in the same transaction:

* ``given``: some current (not superseded) row is granted and not past its expiry;
* else ``expired``: some current row is expired (or granted but past its expiry);
* else ``withdrawn``: some current row is revoked;
* else ``pending``.

The version is the terms version of the newest current granted row.
"""

from __future__ import annotations

SUMMARY_FUNCTION = """CREATE FUNCTION neonpro_consent_summary() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  v_status text;
  v_version text;
BEGIN
  WITH current_rows AS (
    SELECT c.status, c.expires_at, c.terms_version, c.created_at
    FROM consent_records c
    WHERE c.clinic_id = NEW.clinic_id AND c.patient_id = NEW.patient_id
      AND NOT EXISTS (SELECT 1 FROM consent_records n
                      WHERE n.clinic_id = c.clinic_id AND n.supersedes_id = c.id)
  )
  SELECT CASE
      WHEN bool_or(status = 'granted' AND (expires_at IS NULL OR expires_at > now()))
        THEN 'given'
      WHEN bool_or(status = 'expired' OR (status = 'granted' AND expires_at <= now()))
        THEN 'expired'
      WHEN bool_or(status = 'revoked') THEN 'withdrawn'
      ELSE 'pending' END,
    (SELECT terms_version FROM current_rows WHERE status = 'granted'
       AND (expires_at IS NULL OR expires_at > now()) ORDER BY created_at DESC LIMIT 1)
  INTO v_status, v_version FROM current_rows;
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
    return [SUMMARY_FUNCTION, SUMMARY_TRIGGER]
