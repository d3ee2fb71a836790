"""``neonpro keys``: encryption key status, new keys, rotation, blind-index re-keying.

See docs/keys.md for the procedures. Key material is never printed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from neonpro.entrypoints.cli._common import console, container, fail, out, print_json, typer_app
from neonpro.services.key_batches import DEFAULT_BATCH, MAX_BATCH

if TYPE_CHECKING:
    from neonpro.bootstrap import Container
    from neonpro.config import Settings
    from neonpro.services import keys as svc

app = typer_app(
    help="Encryption keys: status per key id, add a key, rotate values to it, re-key the "
         "blind indexes.",
    no_args_is_help=True,
)

NEXT_BLIND_ENV = "NEONPRO_NEXT_BLIND_INDEX_KEY"

JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]
BatchOption = Annotated[int, typer.Option(
    "--batch", min=1, max=MAX_BATCH, help="Rows per batch (one short transaction each).")]
MaxBatchesOption = Annotated[int | None, typer.Option(
    "--max-batches", min=1, help="Stop after this many batches (run again to continue).")]


@contextmanager
def _clean_errors() -> Iterator[None]:
    """Key and rotation errors as one clean line (they never carry values or keys)."""
    from neonpro.adapters.crypto import DecryptionError, KeyConfigError
    from neonpro.services import keys as svc

    try:
        yield
    except (KeyConfigError, svc.KeyRotationError, DecryptionError) as exc:
        fail(str(exc))


def _uses_env_keys(settings: Settings) -> bool:
    return settings.key_file is None and bool(
        settings.encryption_keys or settings.blind_index_key or settings.active_key_id
    )


def _key_file(settings: Settings, env_advice: str) -> Path:
    """The key file to change: NEONPRO_KEY_FILE, else the development key file."""
    from neonpro.adapters.crypto import dev_key_file_path, load_keyring
    from neonpro.config import Environment

    if settings.key_file is not None:
        return settings.key_file
    if _uses_env_keys(settings):
        fail(f"keys come from environment variables, which this command cannot change: "
             f"{env_advice}")
    if settings.environment is Environment.PRODUCTION:
        fail("production needs NEONPRO_KEY_FILE (or NEONPRO_ENCRYPTION_KEYS and "
             "NEONPRO_BLIND_INDEX_KEY)")
    load_keyring(settings)  # creates the development key file if there is none yet
    return dev_key_file_path(settings)


@contextmanager
def _bar(total: int, description: str) -> Iterator[svc.Progress]:
    """A Rich progress bar on stderr; a new label (a new pass) starts the bar again."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        task: TaskID = bar.add_task(description, total=total)
        label = [""]

        def advance(table: str, n: int) -> None:
            if table != label[0]:
                if label[0] and "pass" in table:
                    bar.reset(task, total=total)
                label[0] = table
                bar.update(task, description=f"{description}: {table}")
            bar.update(task, advance=n)

        yield advance


def _print_status(status: svc.KeyStatus) -> None:
    key_ids = sorted({*status.key_ids, *(k for c in status.columns for k in c.by_key)})
    table = Table("table", "column", *key_ids, title="encrypted values per key id")
    for c in status.columns:
        table.add_row(c.table, c.column, *(str(c.by_key.get(k, 0)) for k in key_ids))
    table.add_row("[b]all[/]", "", *(f"[b]{status.by_key.get(k, 0)}[/]" for k in key_ids))
    out.print(table)
    out.print(f"active key: {status.active_key_id}; {status.remaining} value(s) not under it",
              highlight=False)
    for t, col, k in status.unknown:
        out.print(f"[bold red]{t}.{col} has values under key id {k}, which the key ring lacks[/]",
                  highlight=False)


@app.command()
def status(as_json: JsonFlag = False) -> None:
    """How many values of each encrypted column are under each key id, and the active key."""
    from neonpro.services import keys as svc

    with container() as box, _clean_errors():
        report = svc.key_status(box)
    if as_json:
        print_json(report.as_dict())
    else:
        _print_status(report)


@app.command()
def add(
    activate: Annotated[bool, typer.Option(
        "--activate/--no-activate",
        help="Make the new key encrypt new values (default), or only add it so every "
             "process knows it before a later `keys activate`.")] = True,
    as_json: JsonFlag = False,
) -> None:
    """Add a new random AES-256 key (next id: k2, k3...) to the key file."""
    from neonpro.adapters.crypto import add_key_to_file

    with container() as box, _clean_errors():
        path = _key_file(box.settings, (
            "generate a key with `openssl rand -base64 32`, append it to "
            "NEONPRO_ENCRYPTION_KEYS as ',k2:<base64>' (keep the old ones), set "
            "NEONPRO_ACTIVE_KEY_ID=k2, restart every process, then run `neonpro keys rotate`"))
        new_id = add_key_to_file(path, activate=activate)
    if as_json:
        print_json({"key_id": new_id, "active": activate, "key_file": str(path)})
        return
    out.print(f"added key {new_id} to {path}" + (" and made it active" if activate else ""),
              highlight=False)
    console.print(
        "next: restart every process (they read keys at start), then run `neonpro keys rotate`"
        if activate else
        f"next: restart every process, then `neonpro keys activate {new_id}`, restart again "
        "and run `neonpro keys rotate`", highlight=False)


@app.command("audit-key")
def audit_key(as_json: JsonFlag = False) -> None:
    """Add a new audit key (next id: a2, a3...) and make it seal new audit events; the older
    ones stay to verify what they sealed (docs/audit.md)."""
    from neonpro.adapters.crypto import add_audit_key_to_file

    with container() as box, _clean_errors():
        path = _key_file(box.settings, (
            "generate a key with `openssl rand -base64 32`, append it to NEONPRO_AUDIT_KEYS "
            "as ',a2:<base64>' (keep the old ones), set NEONPRO_ACTIVE_AUDIT_KEY_ID=a2 and "
            "restart every process"))
        new_id = add_audit_key_to_file(path)
    if as_json:
        print_json({"audit_key_id": new_id, "key_file": str(path)})
        return
    out.print(f"added audit key {new_id} to {path} and made it active", highlight=False)
    console.print("next: restart every process (they read keys at start); keep the older "
                  "audit keys as long as anything they sealed is kept", highlight=False)


@app.command()
def activate(key_id: Annotated[str, typer.Argument(help="A key id already in the key file.")],
             ) -> None:
    """Make KEY_ID the key that encrypts new values (after `keys add --no-activate`)."""
    from neonpro.adapters.crypto import activate_key_in_file

    with container() as box, _clean_errors():
        path = _key_file(box.settings, "set NEONPRO_ACTIVE_KEY_ID and restart every process")
        activate_key_in_file(path, key_id)
    out.print(f"{key_id} is now the active key in {path}", highlight=False)
    console.print("next: restart every process, then run `neonpro keys rotate`")


@app.command()
def remove(key_id: Annotated[str, typer.Argument(help="The key id to remove.")]) -> None:
    """Remove a key that no value uses any more (checked in the database first)."""
    from neonpro.services import keys as svc

    with container() as box, _clean_errors():
        path = _key_file(box.settings, (
            "check `neonpro keys status` shows no value under it, then remove it from "
            "NEONPRO_ENCRYPTION_KEYS and restart every process"))
        svc.remove_key(box, path, key_id)
    out.print(f"removed key {key_id} from {path}", highlight=False)


@app.command()
def rotate(batch: BatchOption = DEFAULT_BATCH, max_batches: MaxBatchesOption = None,
           as_json: JsonFlag = False) -> None:
    """Re-encrypt every value under the active key, in batches, while the system runs.

    Resumable: if it stops (interrupted, --max-batches), run it again. Old keys keep
    decrypting throughout; `keys status` says when a key is no longer used.
    """
    from neonpro.services import keys as svc

    with container() as box, _clean_errors():
        before = svc.key_status(box)
        svc.ensure_known_keys(before)  # before the progress bar: nothing would be done
        active = before.active_key_id
        try:
            with _bar(before.remaining, f"re-encrypting under {active}") as progress:
                report = svc.rotate(box, batch_size=batch, max_batches=max_batches,
                                    before=before, progress=progress)
        except KeyboardInterrupt:
            fail("interrupted: finished batches are kept; run `neonpro keys rotate` again "
                 "to continue", 130)
    if as_json:
        print_json(report.as_dict())
    else:
        _print_status(report.status)
        out.print(f"re-encrypted {report.rotated} value(s) in {report.batches} batch(es)",
                  highlight=False)
    if not report.complete:
        console.print(f"stopped after {report.batches} batch(es): run `neonpro keys rotate` "
                      "again to continue", highlight=False)
    elif report.status.remaining:
        console.print(f"{report.status.remaining} value(s) are still under other keys (written "
                      "meanwhile by a process with an older active key?): restart every "
                      "process and run `neonpro keys rotate` again", highlight=False)


def _next_blind_key(box: Container) -> tuple[bytes, Path | None]:
    """The new blind-index key: pending in the key file, or from NEONPRO_NEXT_BLIND_INDEX_KEY."""
    from neonpro.adapters.crypto import decode_key, pending_blind_index_key

    settings = box.settings
    if _uses_env_keys(settings):
        value = os.environ.get(NEXT_BLIND_ENV)
        if not value:
            fail(f"keys come from environment variables: generate a new blind-index key with "
                 f"`openssl rand -base64 32`, set {NEXT_BLIND_ENV} to it and run again")
        return decode_key(value, NEXT_BLIND_ENV), None
    path = _key_file(settings, "")
    return pending_blind_index_key(path), path


@app.command()
def reindex(
    batch: BatchOption = DEFAULT_BATCH,
    max_batches: MaxBatchesOption = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Re-key the CPF/CNS blind indexes with a new blind-index key (maintenance operation).

    While it runs, patients already re-indexed are not found by CPF/CNS by processes
    still using the old key: stop the API (or accept that) until it ends and every
    process restarts. The new key is stored in the key file before any row changes
    (`next_blind_index_key`), so an interrupted run resumes with it; it replaces the old
    key only when every index was rewritten without a uniqueness conflict.
    """
    if not yes and not typer.confirm(
        "CPF/CNS lookups will miss re-indexed patients until every process restarts with the "
        "new key. Continue?", err=True,
    ):
        fail("cancelled")
    report, promoted, path = _run_reindex(batch, max_batches)
    if as_json:
        print_json({**report.as_dict(), "promoted": promoted})
    else:
        out.print(f"re-indexed {report.updated} patient(s) in {report.passes} pass(es)",
                  highlight=False)
    _explain_reindex(report, promoted=promoted, path=path)


def _run_reindex(batch: int, max_batches: int | None) -> tuple[svc.ReindexReport, bool,
                                                                Path | None]:
    """Re-index under a progress bar, then promote the new key if the run allows it."""
    from neonpro.services import keys as svc

    with container() as box, _clean_errors():
        new_key, path = _next_blind_key(box)
        total = svc.blind_indexed_patients(box)
        try:
            with _bar(total, "re-indexing") as progress:
                report = svc.reindex_blind(box, new_key, batch_size=batch,
                                           max_batches=max_batches, progress=progress)
        except KeyboardInterrupt:
            fail("interrupted: run `neonpro keys reindex` again to continue with the same key",
                 130)
        promoted = svc.promote_blind_key(box, report, new_key, path)
    return report, promoted, path


def _explain_reindex(report: svc.ReindexReport, *, promoted: bool, path: Path | None) -> None:
    """Conflicts, a stop, an incomplete run or what to do next; fails unless it ended well."""
    if report.conflicts:
        for c in report.conflicts:
            console.print(f"conflict: clinic {c.clinic_id}: patient {c.patient_id} has the same "
                          f"{c.kind.upper()} as patient {c.other_patient_id}", highlight=False)
        fail(f"{len(report.conflicts)} uniqueness conflict(s): the new key was NOT put in use. "
             "Resolve the duplicates (same person registered twice) and run again.")
    if report.stopped:
        console.print("stopped by --max-batches: run `neonpro keys reindex` again to continue",
                      highlight=False)
        return
    if not report.complete:
        fail(f"rows kept changing during {report.passes} passes (a process still writes with "
             "the old key?): stop the writers and run again")
    if promoted:
        console.print(
            f"the new blind-index key is now in {path} (the old one is kept under "
            "retired_blind_index_keys). Restart every process now. Audit checkpoints exported "
            "before this verify with the retired key: export a new one "
            "(`neonpro audit checkpoint`).", highlight=False)
    else:
        console.print(
            f"done: set NEONPRO_BLIND_INDEX_KEY to the value of {NEXT_BLIND_ENV}, keep the old "
            "value safe (audit checkpoints exported before now verify with it), unset "
            f"{NEXT_BLIND_ENV} and restart every process", highlight=False)
