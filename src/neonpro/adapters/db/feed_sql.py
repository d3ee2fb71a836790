"""What the database does when an appointment changes: the change feed and risk outcomes.

Part of the expected DDL (see ``security.py``); migration 0007 carries a frozen copy.

* ``neonpro_appointment_feed``: publishes booked, rescheduled, confirmed, checked-in,
  started, completed, no-show, cancelled and deleted appointments with ``pg_notify`` on
  the clinic's own channel, from the trigger, so the notification belongs to the same
  transaction: PostgreSQL delivers it at commit and drops it on rollback, whoever made the
  change (the services, the demo generator, raw SQL). The payload is ids, the event, the
  status and the version: never a name, a time or any text. Rows blocked under a legal
  hold publish nothing. A reschedule is announced once, by the new row
  (``rescheduled_from_id``).
* ``neonpro_feed_channel``: a clinic's channel, ``neonpro_feed_`` and 128 bits of an HMAC
  of the clinic id keyed with the owner-only ``audit_ref_keys`` key. PostgreSQL lets any
  role LISTEN to any channel; what it cannot do here is name another clinic's: only the
  service login may call this function (the change feed listens on a service
  connection, whose statements the application login cannot see in pg_stat_activity),
  and the trigger that notifies runs as the owner.
* ``neonpro_risk_outcome``: fills ``appointment_risk_scores.actual_outcome`` when the
  appointment is completed, missed or cancelled, so recorded predictions can be checked
  against what happened.
"""

from __future__ import annotations

CHANNEL_PREFIX = "neonpro_feed_"

CHANNEL_FUNCTION = """CREATE FUNCTION neonpro_feed_channel(p_clinic uuid) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT 'neonpro_feed_' || left(encode(sha256(k.outer_pad || sha256(k.inner_pad
    || convert_to('neonpro-feed-v1:' || p_clinic::text, 'UTF8'))), 'hex'), 32)
  FROM audit_ref_keys k WHERE k.id = 1
$$"""

FEED_FUNCTION = """CREATE FUNCTION neonpro_appointment_feed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  v_row appointments;
  v_event text;
BEGIN
  IF TG_OP = 'DELETE' THEN
    v_row := OLD;
    v_event := 'deleted';
  ELSE
    v_row := NEW;
    IF TG_OP = 'INSERT' THEN
      v_event := CASE WHEN NEW.rescheduled_from_id IS NULL THEN 'booked' ELSE 'rescheduled' END;
    ELSIF NEW.status IS DISTINCT FROM OLD.status THEN
      v_event := CASE NEW.status
        WHEN 'confirmed' THEN 'confirmed' WHEN 'cancelled' THEN 'cancelled'
        WHEN 'in_progress' THEN 'started' WHEN 'completed' THEN 'completed'
        WHEN 'no_show' THEN 'no_show' END;
    ELSIF OLD.check_in_time IS NULL AND NEW.check_in_time IS NOT NULL THEN
      v_event := 'checked_in';
    END IF;
  END IF;
  IF v_event IS NULL OR v_row.blocked_at IS NOT NULL THEN
    RETURN NULL;
  END IF;
  PERFORM pg_notify(neonpro_feed_channel(v_row.clinic_id), json_build_object(
    'clinic_id', v_row.clinic_id, 'appointment_id', v_row.id, 'event', v_event,
    'status', v_row.status, 'version', v_row.version, 'patient_id', v_row.patient_id,
    'professional_id', v_row.professional_id,
    'rescheduled_from_id', v_row.rescheduled_from_id)::text);
  RETURN NULL;
END
$$"""

FEED_TRIGGER = (
    "CREATE TRIGGER appointments_feed AFTER INSERT OR UPDATE OR DELETE ON appointments "
    "FOR EACH ROW EXECUTE FUNCTION neonpro_appointment_feed()"
)

OUTCOME_FUNCTION = """CREATE FUNCTION neonpro_risk_outcome() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  UPDATE appointment_risk_scores s
     SET actual_outcome = CASE NEW.status WHEN 'completed' THEN 'attended'
                                          WHEN 'no_show' THEN 'no_show' ELSE 'cancelled' END,
         outcome_at = now()
   WHERE s.clinic_id = NEW.clinic_id AND s.appointment_id = NEW.id;
  RETURN NULL;
END
$$"""

OUTCOME_TRIGGER = (
    "CREATE TRIGGER appointments_risk_outcome AFTER UPDATE OF status ON appointments "
    "FOR EACH ROW WHEN (NEW.status IS DISTINCT FROM OLD.status "
    "AND NEW.status IN ('completed', 'no_show', 'cancelled')) "
    "EXECUTE FUNCTION neonpro_risk_outcome()"
)


CHANNEL_GRANTS = (
    "REVOKE ALL ON FUNCTION neonpro_feed_channel(uuid) FROM PUBLIC",
    "REVOKE ALL ON FUNCTION neonpro_appointment_feed() FROM PUBLIC",
    "GRANT EXECUTE ON FUNCTION neonpro_feed_channel(uuid) TO {service}",
)


# On Citus (revision 0020): ``pg_notify`` on a worker reaches that worker's listeners only,
# and a transaction prepared on several nodes may not notify at all. There the trigger
# writes the same payload to an outbox, a table co-located with the appointments (the row
# goes to the clinic's node, in the changing transaction: a rolled-back change leaves
# nothing), and the change feed's listener on the coordinator relays it: it deletes what
# the outbox holds and notifies each payload on its clinic's channel, in one transaction
# (``adapters/feed.py``). Only the service login may read and delete it.
OUTBOX = "neonpro_feed_outbox"
OUTBOX_TABLE = f"""CREATE TABLE IF NOT EXISTS {OUTBOX} (
  clinic_id uuid NOT NULL,
  at timestamptz NOT NULL DEFAULT clock_timestamp(),
  payload jsonb NOT NULL
)"""


def feed_outbox_sql(service: str) -> list[str]:
    """The outbox, distributed with the appointments, and the trigger that fills it (run on
    a Citus coordinator by the tables' owner, ``citus.enable_unsafe_triggers`` on)."""
    notify = "PERFORM pg_notify(neonpro_feed_channel(v_row.clinic_id), json_build_object("
    payload_end = "'rescheduled_from_id', v_row.rescheduled_from_id)::text);"
    if notify not in FEED_FUNCTION or payload_end not in FEED_FUNCTION:
        msg = "FEED_FUNCTION changed: feed_outbox_sql no longer knows where it notifies"
        raise RuntimeError(msg)
    to_outbox = FEED_FUNCTION.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1).replace(
        notify, "INSERT INTO neonpro_feed_outbox (clinic_id, payload) "
        "VALUES (v_row.clinic_id, jsonb_build_object(").replace(
        payload_end, "'rescheduled_from_id', v_row.rescheduled_from_id));")
    return [
        OUTBOX_TABLE,
        "SELECT create_distributed_table('neonpro_feed_outbox', 'clinic_id', "
        "colocate_with => 'appointments') WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition "
        "WHERE logicalrelid = 'neonpro_feed_outbox'::regclass)",
        f"REVOKE ALL ON {OUTBOX} FROM PUBLIC",
        f"GRANT SELECT, DELETE ON {OUTBOX} TO {service}",
        to_outbox,
        "DROP TRIGGER IF EXISTS appointments_feed ON appointments",
        FEED_TRIGGER,
    ]


def feed_ddl(service: str) -> list[str]:
    """Functions first, then the triggers that call them."""
    return [CHANNEL_FUNCTION, FEED_FUNCTION, OUTCOME_FUNCTION, FEED_TRIGGER, OUTCOME_TRIGGER,
            *(g.format(service=service) for g in CHANNEL_GRANTS)]
