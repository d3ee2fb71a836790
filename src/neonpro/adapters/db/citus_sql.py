"""neonpro on a Citus cluster: which table is what, and the SQL that distributes the schema.

Part of the expected DDL for a Citus database (migrations 0017 and 0018 carry frozen copies); on
plain PostgreSQL and the embedded default none of it runs.

* **Reference tables** (a copy on every node): the global tables (staff accounts, sessions,
  sign-in throttling, the owner's keys) and ``clinics``. ``clinics`` is a reference table
  and not a table distributed by ``id``: a CNPJ is unique across the whole network
  (``uq_clinics_cnpj``), which Citus enforces only on a reference table, and every tenant
  table's foreign key to it stays enforced (a distributed table may reference a reference
  table).
* **Distributed tables**: every tenant table, by ``clinic_id``, all in one co-location
  group, so one clinic's rows of every table live on the same node and every foreign key
  and unique constraint (all of them start with ``clinic_id``) is checked there.
* **Foreign keys with ``ON DELETE SET NULL (column)``** are refused by Citus when they
  include the distribution column; on Citus they become plain (``NO ACTION``) keys: a
  delete of a row that others still reference is refused instead of clearing the
  references (docs/scaling.md).
* **Triggers** (audit, guards, ledgers) run on the shards (``citus.enable_unsafe_triggers``
  while distributing): an audited change's event is written to the co-located shard of
  ``audit_events`` on the same node.
* **The transaction's context** reaches the workers: :func:`distributed_context_functions`.
"""

from __future__ import annotations

from sqlalchemy import MetaData

from neonpro.adapters.db.audit_sql.context import distributed_context_functions, session_live
from neonpro.adapters.db.audit_sql.evidence import evidence_removal_on_citus, granted_ledger_guard
from neonpro.adapters.db.audit_sql.triggers import audit_row_change
from neonpro.adapters.db.consent_sql import ENTRY_FUNCTION, STATE_FUNCTION, SUMMARY_FUNCTION
from neonpro.adapters.db.durability_sql import COMMIT_TOKEN_EXISTS
from neonpro.adapters.db.feed_sql import OUTCOME_FUNCTION, feed_outbox_sql

REFERENCE = "reference"
DISTRIBUTED = "distributed"
DISTRIBUTION_COLUMN = "clinic_id"


def citus_kinds(metadata: MetaData) -> dict[str, str]:
    """Each table of the schema and its Citus kind (``reference`` or ``distributed``)."""
    return {
        table.name: DISTRIBUTED if table.info.get("scope") == "tenant" else REFERENCE
        for table in metadata.sorted_tables
    }


# tables a Citus database has beyond the models: the appointment feed's outbox (revision
# 0020), co-located with the tenant tables; the coordinator relays it (feed_sql)
CITUS_ONLY: dict[str, str] = {"neonpro_feed_outbox": DISTRIBUTED}


def citus_tables(metadata: MetaData) -> dict[str, str]:
    """Every table of a migrated Citus database and its kind."""
    return citus_kinds(metadata) | CITUS_ONLY


def distribute_sql(kinds: dict[str, str]) -> list[str]:
    """Statements that distribute the tables of ``kinds`` (run by the tables' owner, in one
    transaction, on a database with the Citus extension); a table already distributed is
    left as it is, so running them again changes nothing. ``{service}`` stands for the
    service role's name."""
    return [
        # one connection per worker for the whole transaction: the foreign keys made after
        # the tables were distributed need it
        "SET LOCAL citus.multi_shard_modify_mode = 'sequential'",
        "SET LOCAL citus.enable_unsafe_triggers = on",
        _distribute_block(kinds),
        *_functions_on_citus(),
    ]


def _distribute_block(kinds: dict[str, str]) -> str:
    reference = sorted(t for t, k in kinds.items() if k == REFERENCE)
    distributed = sorted(t for t, k in kinds.items() if k == DISTRIBUTED)
    anchor = distributed[0]
    array = "ARRAY[{}]::text[]"
    refs = array.format(", ".join(f"'{t}'" for t in reference))
    dists = array.format(", ".join(f"'{t}'" for t in distributed))
    return f"""DO $distribute$
DECLARE
  f record;
  t text;
  fks text[] := '{{}}';
BEGIN
  -- foreign keys between tables Citus does not know yet make it turn the whole graph into
  -- local tables: they are dropped, the tables distributed, and the keys made again
  FOR f IN
    SELECT c.conrelid::regclass::text AS tbl, c.conname, pg_get_constraintdef(c.oid) AS def
      FROM pg_constraint c
     WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace
       AND c.conrelid::regclass::text = ANY ({refs} || {dists})
       AND NOT EXISTS (SELECT 1 FROM pg_dist_partition p WHERE p.logicalrelid = c.conrelid)
  LOOP
    EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', f.tbl, f.conname);
    -- Citus refuses ON DELETE SET NULL on a key holding the distribution column
    fks := fks || format('ALTER TABLE %I ADD CONSTRAINT %I %s', f.tbl, f.conname,
                         regexp_replace(f.def, ' ON DELETE SET NULL( \\([^)]*\\))?', ''));
  END LOOP;
  -- the rows already there are copied to the shards by the owner, whom row-level security
  -- binds too (FORCE): lifted for the copy and put back in the same transaction
  FOREACH t IN ARRAY {refs} || {dists} LOOP
    CONTINUE WHEN EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = t::regclass);
    EXECUTE format('ALTER TABLE %I NO FORCE ROW LEVEL SECURITY', t);
    IF t = ANY ({refs}) THEN
      PERFORM create_reference_table(t);
    ELSE
      PERFORM create_distributed_table(t, '{DISTRIBUTION_COLUMN}',
        colocate_with => CASE WHEN t = '{anchor}' THEN 'none' ELSE '{anchor}' END);
    END IF;
    -- Citus leaves the copied rows in the coordinator's table too, out of every query's
    -- reach (an erasure would never touch them): gone once they are on the shards
    PERFORM truncate_local_data_after_distributing_table(t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
  END LOOP;
  FOREACH t IN ARRAY fks LOOP
    EXECUTE t;
  END LOOP;
END
$distribute$"""  # noqa: S608  (names of our own tables)


ERASURE_REQUEST_NESTED = tuple(
    f"ALTER FUNCTION {f}() SET citus.allow_nested_distributed_execution = on"
    for f in ("neonpro_erasure_request_check", "neonpro_erasure_request_kept"))


def _functions_on_citus() -> list[str]:
    """The functions and triggers that differ on Citus (the module's docstring says why)."""
    return [
        TABLE_OF,
        REMOTE_REPLICA,
        *(_replace(statement) for statement in distributed_context_functions()),
        # consent evidence is removed by its caller, granted by the owner (audit_sql.evidence)
        _on_shards(granted_ledger_guard()),
        *evidence_removal_on_citus(),
        _on_shards(audit_row_change()).replace(
            "\nBEGIN\n", "\nBEGIN\n" + _ONCE_PER_REFERENCE_CHANGE, 1),
        # the coordinator's sequence is not on the workers, where the shards' triggers run:
        # a consent's place in its ledger is the microsecond it was written (a clinic's
        # ledger lives on one node; moving it relies on the nodes' clocks, docs/scaling.md)
        _replace(ENTRY_FUNCTION).replace(
            "nextval('consent_records_entry_no_seq')",
            "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint"),
        # the membership narrowed to the clinic by value (s.clinic_id = p_clinic_id): one shard
        _plpgsql(session_live()).replace("m.clinic_id = s.clinic_id", "m.clinic_id = p_clinic_id"),
        _plpgsql(COMMIT_TOKEN_EXISTS),
        # these read the owner's key, a reference table: on a worker, inside a query pushed
        # to a shard, that read is local (every node holds the whole table), which Citus
        # allows only when told
        *(f"ALTER FUNCTION {f} SET citus.allow_nested_distributed_execution = on"
          for f in ("neonpro_patient_ref(uuid)", "neonpro_feed_channel(uuid)",
                    "neonpro_context_mac(" + ", ".join(["text"] * 8) + ")")),
        # the erasure ledger's reference to its request (erasure_sql.request_ddl), checked
        # by triggers on the shards that read the other table (revision 0021)
        *ERASURE_REQUEST_NESTED,
        _consent_state(),
        _consent_summary(),
        # pg_notify on a worker reaches the worker's listeners, never the coordinator's, and
        # a transaction prepared on several nodes may not notify: the appointment feed goes
        # through an outbox the coordinator relays (feed_sql, revision 0020)
        *feed_outbox_sql("{service}"),
        _risk_outcome(),
    ]


def _risk_outcome() -> str:
    """The risk-outcome trigger with its outcome worked out before the UPDATE: Citus sends
    a ``CASE <parameter> WHEN ...`` inside a distributed UPDATE to the shard wrongly
    ("operator does not exist: text = boolean")."""
    head, rest = OUTCOME_FUNCTION.split("BEGIN\n", 1)
    case, rest = rest.split("SET actual_outcome = ", 1)[1].split(",\n", 1)
    update = OUTCOME_FUNCTION.split("BEGIN\n", 1)[1].replace(case, "v_outcome")
    return _replace(f"{head}DECLARE\n  v_outcome text := {case};\nBEGIN\n{update}")


_STATE_QUERY = STATE_FUNCTION.split("AS $$\n", 1)[1].rsplit("\n$$", 1)[0]
_STATE_FILTER = "    WHERE c.status IN ('granted', 'revoked')\n"
_STATE_COLUMNS = ", ".join(
    line.strip().split(" ")[0] for line in
    STATE_FUNCTION.split("RETURNS TABLE (", 1)[1].split(")\n", 1)[0].split(","))


def _consent_state_query(now: str, clinic: str, patient: str | None = None) -> str:
    """neonpro_consent_state's query, judged at ``now``, for one clinic (``clinic``: an
    expression) and patient, named in every part of it: Citus routes it to one shard only
    when each table of the query is narrowed to the clinic."""
    where = f"c.clinic_id = {clinic}" + (f" AND c.patient_id = {patient}" if patient else "")
    return _STATE_QUERY.replace("p_now", now).replace(
        "x.clinic_id = c.clinic_id", f"x.clinic_id = {clinic}").replace(
        _STATE_FILTER, _STATE_FILTER.rstrip("\n") + f" AND {where}\n")


def _consent_state() -> str:
    """``neonpro_consent_state`` on Citus: PL/pgSQL, its query sent with the clinic and the
    time as values. Citus does not plan an inlined SQL function over a distributed table
    with parameters in it, so the SQL function of one server cannot be used there. The
    clinic is the transaction's (a cross-clinic caller, bound to none: every clinic)."""
    head = STATE_FUNCTION.split("LANGUAGE sql STABLE AS $$", 1)[0]
    every = _STATE_QUERY.replace("p_now", "%1$L")
    one = _consent_state_query("%1$L", "%2$L::uuid")
    return _replace(head + f"""LANGUAGE plpgsql STABLE AS $$
DECLARE
  v_clinic text := NULLIF(current_setting('app.clinic_id', true), '');
BEGIN
  IF v_clinic IS NULL THEN
    RETURN QUERY EXECUTE format($query${every}$query$, p_now);
  ELSE
    RETURN QUERY EXECUTE format($query${one}$query$, p_now, v_clinic);
  END IF;
END
$$""")


def _consent_summary() -> str:
    """The consent summary trigger, its query of the patient's states sent with the row's
    clinic and patient as values (``_consent_state``)."""
    head, rest = SUMMARY_FUNCTION.split("  SELECT CASE", 1)
    aggregate, tail = rest.split("  INTO v_status, v_version\n", 1)
    tail = tail.split(";", 1)[1]
    states = _consent_state_query("now()", "%1$L::uuid", "%2$L::uuid")
    query = f"SELECT CASE{aggregate}  FROM ({states}) s({_STATE_COLUMNS})"  # noqa: S608
    return _replace(f"{head}  EXECUTE format($query${query}$query$,\n"
                    f"    NEW.clinic_id, NEW.patient_id) INTO v_status, v_version;{tail}")


# a trigger on a distributed table runs on its shards, whose names carry the shard's id
TABLE_OF = """CREATE OR REPLACE FUNCTION neonpro_table_of(p_rel oid) RETURNS text
LANGUAGE sql STABLE SET search_path = public, pg_temp AS $$
  SELECT coalesce((SELECT l.relname::text FROM pg_dist_shard s
                     JOIN pg_class l ON l.oid = s.logicalrelid
                    WHERE s.shardid = substring(c.relname from '_([0-9]+)$')::bigint
                      AND c.relname = l.relname || '_' || s.shardid), c.relname::text)
    FROM pg_class c WHERE c.oid = p_rel
$$"""
# a reference table's change runs on every node's copy of it, inside the transaction of the
# node that started it: that node's copy is the one that records the change
REMOTE_REPLICA = """CREATE OR REPLACE FUNCTION neonpro_remote_replica(p_rel oid) RETURNS boolean
LANGUAGE sql STABLE SET search_path = public, pg_temp AS $$
  SELECT (get_current_transaction_id()).initiator_node_identifier
           IS DISTINCT FROM (SELECT groupid FROM pg_dist_local_group)
     AND EXISTS (SELECT 1 FROM pg_dist_partition p
                  WHERE p.logicalrelid::regclass::text = neonpro_table_of(p_rel)
                    AND p.partmethod = 'n')
$$"""
_ONCE_PER_REFERENCE_CHANGE = """\
  IF neonpro_remote_replica(TG_RELID) THEN
    RETURN NULL;  -- another node's copy of a reference table: that node records the change
  END IF;
"""


def _replace(function_sql: str) -> str:
    return function_sql.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)


def _plpgsql(function_sql: str) -> str:
    """A scalar SQL function as PL/pgSQL, the same query returned: Citus does not plan a SQL
    function's query over a distributed table with the function's parameters in it."""
    head, body = function_sql.split("LANGUAGE sql ", 1)
    attributes, body = body.split(" AS $$\n", 1)
    body = body.rsplit("\n$$", 1)[0]
    return _replace(f"{head}LANGUAGE plpgsql {attributes} AS $$\nBEGIN\n  RETURN (\n{body}\n  );"
                    "\nEND\n$$")


def _on_shards(function_sql: str) -> str:
    """A trigger function as it must be on a shard: the logical table's name, not the
    shard's (``patients``, not ``patients_102041``)."""
    return _replace(function_sql).replace("TG_TABLE_NAME", "neonpro_table_of(TG_RELID)")

