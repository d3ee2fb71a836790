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
:mod:`.erasures`, :mod:`.pruning`, :mod:`.drills`); the work they drive lives in adapters:
:mod:`neonpro.adapters.backup.pgdump` (pg_dump and pg_restore subprocesses),
:mod:`neonpro.adapters.backup.server` (direct connections, and why they are not the unit of
work), :mod:`neonpro.adapters.backup.store` (the backup directory and its manifests).
"""

from neonpro.adapters.backup.pgdump import COMPRESSION, DATA, DUMPS, OWNER_DATA, SCHEMA
from neonpro.adapters.backup.pgtools import BackupError
from neonpro.adapters.backup.server import drop_database, measure_wal_rpo
from neonpro.adapters.backup.store import (
    FORMAT,
    LEDGER,
    MANIFEST,
    VERIFIED,
    Backup,
    catalog,
    check_files,
    find,
    later_ledgers,
)
from neonpro.adapters.backup.stream import sha256_file
from neonpro.services.backup.common import Timings, record_event
from neonpro.services.backup.create import create_backup
from neonpro.services.backup.drills import RPO_TARGET_S, RTO_TARGET_S, DrillReport, drill
from neonpro.services.backup.erasures import (
    FinishReport,
    finish_command,
    finish_restore,
    hold_live,
    known_erasures,
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
    "DrillReport",
    "FinishReport",
    "PrunePlan",
    "RestoreRefused",
    "RestoreReport",
    "Timings",
    "VerifyReport",
    "catalog",
    "check_files",
    "compare",
    "create_backup",
    "drill",
    "drop_database",
    "find",
    "finish_command",
    "finish_restore",
    "hold_live",
    "known_erasures",
    "later_ledgers",
    "lift_live",
    "measure_wal_rpo",
    "plan_prune",
    "prune",
    "reapply_ledger",
    "record_accepted_risk",
    "record_event",
    "restore_backup",
    "sha256_file",
    "verify_backup",
]
