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

The SQL is in parts: :mod:`.names` (what is audited and chained), :mod:`.context`,
:mod:`.triggers`, :mod:`.chain`, and :mod:`.ddl`, which puts them in order.
"""

from __future__ import annotations

from neonpro.adapters.db.audit_sql.ddl import GENERATE_REF_KEY, audit_ddl, ledger_ddl
from neonpro.adapters.db.audit_sql.names import (
    AUDITED_TABLES,
    CHAINS,
    EVIDENCE_REMOVED,
    IGNORED_FIELDS,
    LP,
    NIL,
    SEAL_COLUMNS,
)

__all__ = [
    "AUDITED_TABLES", "CHAINS", "EVIDENCE_REMOVED", "GENERATE_REF_KEY", "IGNORED_FIELDS", "LP",
    "NIL", "SEAL_COLUMNS", "audit_ddl", "ledger_ddl",
]
