"""the erasure ledger's check of its request on Citus; the ledger's lookups by request
and by patient indexed

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-05 12:00:00+00:00

On a database with the Citus extension only: an erasure naming its data-subject request
(``POST /lgpd/patients/{id}/erasure`` with ``request_id``, the console's deletion step)
failed there with "cannot execute a distributed query from a query on a shard". The
ledger's trigger that checks the request (``erasure_sql.request_ddl``, revision 0014) runs
on the ledger's shard and reads ``data_subject_requests``, a distributed table; so does
the request's trigger that keeps a named request. Both functions may now run that read
from a shard (``citus.allow_nested_distributed_execution``, as revision 0017 does for the
functions reading the owner's keys): the one-clinic part of the check is a read of the
co-located shard on the same node; the "held at all" part asks every shard. On every
server: the functions' ``EXISTS`` select a column (Citus cannot read back a zero-column
intermediate result), and two indexes serve the ledger's lookups of a request's erasure
and of a patient's entries (``(clinic_id, request_id)`` where there is one, and
``(clinic_id, patient_id)``): a deletion request is fulfilled only once its patient has an
entry, and its page shows the erasure made for it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy import text

revision: str = '0021'
down_revision: str | Sequence[str] | None = '0020'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# frozen copies of erasure_sql.request_ddl's functions at this revision (every server):
# ``SELECT 1`` where they said ``SELECT`` with no column (Citus sends an EXISTS that asks
# every shard as an intermediate result, which it cannot read without a column)
FUNCTIONS_SQL: tuple[str, ...] = (
    "CREATE OR REPLACE FUNCTION neonpro_erasure_request_check() RETURNS trigger\nLANGUAGE plpgsql AS $$\nBEGIN\n  IF NOT EXISTS (SELECT 1 FROM data_subject_requests r WHERE r.clinic_id = NEW.clinic_id\n                 AND r.patient_id = NEW.patient_id AND r.id = NEW.request_id)\n     AND EXISTS (SELECT 1 FROM data_subject_requests r WHERE r.id = NEW.request_id) THEN\n    RAISE EXCEPTION 'an erasure names as its grounds a data-subject request of its own '\n      'clinic and patient'\n      USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'fk_erasure_ledger_request_data_subject_requests';\n  END IF;\n  RETURN NEW;\nEND\n$$",
    "CREATE OR REPLACE FUNCTION neonpro_erasure_request_kept() RETURNS trigger\nLANGUAGE plpgsql AS $$\nBEGIN\n  IF TG_OP = 'UPDATE' AND (NEW.clinic_id, NEW.patient_id, NEW.id)\n                          = (OLD.clinic_id, OLD.patient_id, OLD.id) THEN\n    RETURN NEW;\n  END IF;\n  IF EXISTS (SELECT 1 FROM erasure_ledger e WHERE e.clinic_id = OLD.clinic_id\n             AND e.request_id = OLD.id) THEN\n    RAISE EXCEPTION 'a data-subject request an erasure names keeps its clinic, patient and id'\n      USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'fk_erasure_ledger_request_data_subject_requests',\n            DETAIL = 'the request is still referenced from the erasure ledger';\n  END IF;\n  RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;\nEND\n$$",
)
# the functions as revision 0014 made them: what a downgrade puts back
BEFORE_SQL: tuple[str, ...] = tuple(
    f.replace("SELECT 1 FROM", "SELECT FROM") for f in FUNCTIONS_SQL)

CITUS = "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')"
# frozen copy of citus_sql.ERASURE_REQUEST_NESTED at this revision
FUNCTIONS = ("neonpro_erasure_request_check", "neonpro_erasure_request_kept")


def upgrade() -> None:
    for statement in FUNCTIONS_SQL:
        op.execute(statement)
    op.create_index(op.f("ix_erasure_ledger_clinic_id_request_id"), "erasure_ledger",
                    ["clinic_id", "request_id"], unique=False,
                    postgresql_where=sa.text("request_id IS NOT NULL"))
    op.create_index(op.f("ix_erasure_ledger_clinic_id_patient_id"), "erasure_ledger",
                    ["clinic_id", "patient_id"], unique=False)
    if not op.get_bind().execute(text(CITUS)).scalar():
        return
    for function in FUNCTIONS:
        op.execute(f"ALTER FUNCTION {function}() "
                   "SET citus.allow_nested_distributed_execution = on")


def downgrade() -> None:
    if op.get_bind().execute(text(CITUS)).scalar():
        for function in FUNCTIONS:
            op.execute(f"ALTER FUNCTION {function}() "
                       "RESET citus.allow_nested_distributed_execution")
    for statement in BEFORE_SQL:
        op.execute(statement)
    op.drop_index(op.f("ix_erasure_ledger_clinic_id_patient_id"), table_name="erasure_ledger")
    op.drop_index(op.f("ix_erasure_ledger_clinic_id_request_id"), table_name="erasure_ledger")
