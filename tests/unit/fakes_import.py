"""In memory: the patient import's keys of the clinic and its bulk load (through the fake
patient repository, so its uniqueness checks run)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from neonpro.domain.ports_import import CheckedRow, ExistingKeys, ProgressFn
from neonpro.domain.schemas.patient import PatientCreate

if TYPE_CHECKING:
    from tests.unit.fakes import FakeUnitOfWork


class FakePatientLoader:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self.uow = uow

    def blind_index(self, kind: str, value: str) -> bytes:
        return hashlib.sha256(f"{kind}\x00{value}".encode()).digest()

    def existing_keys(self, columns: Sequence[str]) -> ExistingKeys:
        mine = [r for r in self.uow.store.get("patients", {}).values()
                if r.clinic_id == self.uow.clinic_id]  # deleted ones too, as the constraints

        def held(name: str) -> frozenset[Any]:
            if name not in columns:
                return frozenset()
            values = {getattr(r, name) for r in mine} - {None}
            if name == "medical_record_number":
                return frozenset(values)
            return frozenset(self.blind_index(name, v) for v in values)

        professionals = None
        if "primary_professional_id" in columns:
            professionals = frozenset[uuid.UUID](
                p.id for p in self.uow.store.get("professionals", {}).values()
                if p.clinic_id == self.uow.clinic_id)
        return ExistingKeys(cpf=held("cpf"), cns=held("cns"),
                            medical_record_number=held("medical_record_number"),
                            professionals=professionals)

    def load(self, columns: Sequence[str], rows: Sequence[CheckedRow],
             progress: ProgressFn) -> int:
        for done, (_line, fields) in enumerate(rows, 1):
            self.uow.patients.add(PatientCreate.model_validate(fields))
            progress("load", done, len(rows))
        progress("insert", len(rows), len(rows))
        return len(rows)
