"""The patient import's port: what the clinic already holds of the unique keys, and the
bulk load of checked rows (``adapters/db/repositories/patient_import.py``: ``COPY`` into
a staging table, then ``INSERT ... SELECT`` under row-level security)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from neonpro.domain.errors import DomainError

ProgressFn = Callable[[str, int, int], None]
"""``progress(phase, done, total)``: phases ``validate``, ``load`` and ``insert``."""

CheckedRow = tuple[int, dict[str, Any]]
"""A valid row: its line in the file and its fields as ``PatientCreate`` dumps them."""


class ImportRefused(DomainError):
    """The file as a whole cannot be imported (missing, not UTF-8 CSV, unknown columns)."""

    code = "import_refused"


class ImportFailed(DomainError):
    """The load failed; the transaction rolled back and nothing was imported."""

    code = "import_failed"


@dataclass(frozen=True, slots=True)
class ExistingKeys:
    """What the clinic already holds of the unique keys (blind indexes, record numbers)."""

    cpf: frozenset[bytes] = frozenset()
    cns: frozenset[bytes] = frozenset()
    medical_record_number: frozenset[str] = frozenset()
    professionals: frozenset[uuid.UUID] | None = None  # None: no such column in the file


class PatientLoader(Protocol):
    """Bulk work on the unit of work's clinic's patients."""

    def existing_keys(self, columns: Sequence[str]) -> ExistingKeys:
        """The clinic's CPF/CNS blind indexes and record numbers (deleted rows too: the
        unique constraints cover them) for the ``columns`` given, and its professionals
        if ``primary_professional_id`` is one of them."""
        ...
    def blind_index(self, kind: str, value: str) -> bytes:
        """The blind index of a CPF or CNS (``kind``), as :meth:`existing_keys` holds it."""
        ...
    def load(self, columns: Sequence[str], rows: Sequence[CheckedRow],
             progress: ProgressFn) -> int:
        """Insert the rows in file order, as the patient repository would, in the unit of
        work's transaction; the number inserted. ImportFailed (no values) if the database
        refuses one."""
        ...
