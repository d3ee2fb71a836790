"""the appointment feed on Citus: an outbox the coordinator relays

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-05 08:10:00+00:00

On a database with the Citus extension only (revision 0017 dropped the feed's trigger
there): ``pg_notify`` on a worker reaches that worker's listeners only, and a transaction
prepared on several nodes may not notify. The trigger now writes the payload to
``neonpro_feed_outbox``, distributed with the appointments (the row lands on the clinic's
node in the changing transaction), and the change feed's listener on the coordinator
deletes what it holds and notifies each payload on its clinic's channel
(``feed_sql.feed_outbox_sql``, ``adapters/feed.py``). Plain PostgreSQL and the embedded
default are unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op
from sqlalchemy import text

from neonpro.adapters.db.migrations import migration_roles

revision: str = '0020'
down_revision: str | Sequence[str] | None = '0019'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CITUS = "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')"
# frozen copy of feed_sql.feed_outbox_sql at this revision; {service}: the role's name
CITUS_SQL: tuple[str, ...] = (
    'SET LOCAL citus.enable_unsafe_triggers = on',
    'CREATE TABLE IF NOT EXISTS neonpro_feed_outbox (\n  clinic_id uuid NOT NULL,\n  at timestamptz NOT NULL DEFAULT clock_timestamp(),\n  payload jsonb NOT NULL\n)',
    "SELECT create_distributed_table('neonpro_feed_outbox', 'clinic_id', colocate_with => 'appointments') WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'neonpro_feed_outbox'::regclass)",
    'REVOKE ALL ON neonpro_feed_outbox FROM PUBLIC',
    'GRANT SELECT, DELETE ON neonpro_feed_outbox TO {service}',
    "CREATE OR REPLACE FUNCTION neonpro_appointment_feed() RETURNS trigger\nLANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$\nDECLARE\n  v_row appointments;\n  v_event text;\nBEGIN\n  IF TG_OP = 'DELETE' THEN\n    v_row := OLD;\n    v_event := 'deleted';\n  ELSE\n    v_row := NEW;\n    IF TG_OP = 'INSERT' THEN\n      v_event := CASE WHEN NEW.rescheduled_from_id IS NULL THEN 'booked' ELSE 'rescheduled' END;\n    ELSIF NEW.status IS DISTINCT FROM OLD.status THEN\n      v_event := CASE NEW.status\n        WHEN 'confirmed' THEN 'confirmed' WHEN 'cancelled' THEN 'cancelled'\n        WHEN 'in_progress' THEN 'started' WHEN 'completed' THEN 'completed'\n        WHEN 'no_show' THEN 'no_show' END;\n    ELSIF OLD.check_in_time IS NULL AND NEW.check_in_time IS NOT NULL THEN\n      v_event := 'checked_in';\n    END IF;\n  END IF;\n  IF v_event IS NULL OR v_row.blocked_at IS NOT NULL THEN\n    RETURN NULL;\n  END IF;\n  INSERT INTO neonpro_feed_outbox (clinic_id, payload) VALUES (v_row.clinic_id, jsonb_build_object(\n    'clinic_id', v_row.clinic_id, 'appointment_id', v_row.id, 'event', v_event,\n    'status', v_row.status, 'version', v_row.version, 'patient_id', v_row.patient_id,\n    'professional_id', v_row.professional_id,\n    'rescheduled_from_id', v_row.rescheduled_from_id));\n  RETURN NULL;\nEND\n$$",
    'DROP TRIGGER IF EXISTS appointments_feed ON appointments',
    'CREATE TRIGGER appointments_feed AFTER INSERT OR UPDATE OR DELETE ON appointments FOR EACH ROW EXECUTE FUNCTION neonpro_appointment_feed()',
)

# the function as it was before on Citus (0017 dropped its trigger there): what a downgrade
# puts back
NOTIFY_FUNCTION = "CREATE OR REPLACE FUNCTION neonpro_appointment_feed() RETURNS trigger\nLANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$\nDECLARE\n  v_row appointments;\n  v_event text;\nBEGIN\n  IF TG_OP = 'DELETE' THEN\n    v_row := OLD;\n    v_event := 'deleted';\n  ELSE\n    v_row := NEW;\n    IF TG_OP = 'INSERT' THEN\n      v_event := CASE WHEN NEW.rescheduled_from_id IS NULL THEN 'booked' ELSE 'rescheduled' END;\n    ELSIF NEW.status IS DISTINCT FROM OLD.status THEN\n      v_event := CASE NEW.status\n        WHEN 'confirmed' THEN 'confirmed' WHEN 'cancelled' THEN 'cancelled'\n        WHEN 'in_progress' THEN 'started' WHEN 'completed' THEN 'completed'\n        WHEN 'no_show' THEN 'no_show' END;\n    ELSIF OLD.check_in_time IS NULL AND NEW.check_in_time IS NOT NULL THEN\n      v_event := 'checked_in';\n    END IF;\n  END IF;\n  IF v_event IS NULL OR v_row.blocked_at IS NOT NULL THEN\n    RETURN NULL;\n  END IF;\n  PERFORM pg_notify(neonpro_feed_channel(v_row.clinic_id), json_build_object(\n    'clinic_id', v_row.clinic_id, 'appointment_id', v_row.id, 'event', v_event,\n    'status', v_row.status, 'version', v_row.version, 'patient_id', v_row.patient_id,\n    'professional_id', v_row.professional_id,\n    'rescheduled_from_id', v_row.rescheduled_from_id)::text);\n  RETURN NULL;\nEND\n$$"


def upgrade() -> None:
    if not op.get_bind().execute(text(CITUS)).scalar():
        return
    service = migration_roles().service
    for statement in CITUS_SQL:
        op.execute(statement.replace("{service}", service))


def downgrade() -> None:
    if not op.get_bind().execute(text(CITUS)).scalar():
        return
    op.execute("SET LOCAL citus.enable_unsafe_triggers = on")
    op.execute("DROP TRIGGER IF EXISTS appointments_feed ON appointments")
    op.execute("DROP TABLE IF EXISTS neonpro_feed_outbox")
    op.execute(NOTIFY_FUNCTION)
