"""Logical backups: create, verify, restore, prune, drill (docs/operations.md).

A backup is a directory ``<NEONPRO_BACKUP_DIR>/<id>/`` holding

* ``schema.dump``: the structure (``pg_dump --format=custom --schema-only``) read as the
  owner, who owns it;
* ``data.dump``: the rows, dumped as the service role (row-level security is forced, so
  the owner alone would dump nothing), every table the service role may read;
* ``owner-data.dump``: the rest, only the owner may read them (the pseudonymisation pads
  of the audit trail, the migration head), dumped as the owner;

all three in one exported snapshot, compressed, and encrypted if a key is set;
* ``erasure-ledger.json``: every erasure decided so far (ids and legal decisions only), so
  a restore of an *older* backup can re-apply erasures made after it;
* ``manifest.json``, written last: SHA-256 and size of each file, migration head, row count
  and checksum of every table and the audit chain heads (all read in pg_dump's own
  snapshot), tool versions, start and end time; ``verify.json`` once verified.

A directory without a manifest is an interrupted backup: never listed, never restored.

The use cases live here, one module each (:mod:`.create`, :mod:`.verify`, :mod:`.restore`,
:mod:`.erasures`, :mod:`.pruning`, :mod:`.drills`), over the ports of
:mod:`neonpro.domain.ports_backup` (a :class:`~neonpro.domain.ports_backup.BackupSite`,
which the composition root is): the backup directory and its manifests (``BackupStore``),
pg_dump and pg_restore (``DumpTool``), the database server's whole databases
(``ScratchServer``). ``adapters/backup`` implements them.
"""

from neonpro.domain.backup import (
    COMPRESSION,
    DATA,
    DUMPS,
    FORMAT,
    LEDGER,
    MANIFEST,
    OWNER_DATA,
    SCHEMA,
    VERIFIED,
    Backup,
    BackupError,
    CorruptBackup,
    Timings,
    ToolError,
)
from neonpro.services.backup.common import catalog, find, record_event
from neonpro.services.backup.create import create_backup
from neonpro.services.backup.drills import RPO_TARGET_S, RTO_TARGET_S, DrillReport, drill
from neonpro.services.backup.erasures import (
    FinishReport,
    finish_command,
    finish_restore,
    hold_live,
    known_erasures,
    later_ledgers,
    lift_live,
    reapply_ledger,
    record_accepted_risk,
)
from neonpro.services.backup.pruning import PrunePlan, plan_prune, prune
from neonpro.services.backup.restore import RestoreRefused, RestoreReport, restore_backup
from neonpro.services.backup.verify import VerifyReport, compare, verify_backup

__all__ = [
    "COMPRESSION",
    "DATA",
    "DUMPS",
    "DUMPS",
    "FORMAT",
    "LEDGER",
    "MANIFEST",
    "OWNER_DATA",
    "RPO_TARGET_S",
    "RTO_TARGET_S",
    "SCHEMA",
    "VERIFIED",
    "Backup",
    "BackupError",
    "CorruptBackup",
    "DrillReport",
    "FinishReport",
    "PrunePlan",
    "RestoreRefused",
    "RestoreReport",
    "Timings",
    "ToolError",
    "VerifyReport",
    "catalog",
    "compare",
    "create_backup",
    "drill",
    "find",
    "finish_command",
    "finish_restore",
    "hold_live",
    "known_erasures",
    "later_ledgers",
    "lift_live",
    "plan_prune",
    "prune",
    "reapply_ledger",
    "record_accepted_risk",
    "record_event",
    "restore_backup",
    "verify_backup",
]
