"""One schema per record (docs/architecture.md): a router returns the domain's schema, or,
where it needs its own shape, that shape is declared here as the domain record's fields
minus some plus some, and checked, so the two cannot drift apart unseen.

The discovery test finds every API model that mostly repeats a domain or service record's
fields and asks that it be listed here (or replaced by the record itself).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
from typing import Any

import pytest
from pydantic import BaseModel

import neonpro.domain
import neonpro.entrypoints.api
import neonpro.services
from neonpro.domain.audit_chain import ChainEvent
from neonpro.domain.erasure import Decision
from neonpro.domain.noshow import StoredModel
from neonpro.domain.paging import Page
from neonpro.domain.schemas.audit import AuditEvent
from neonpro.domain.schemas.incident import IncidentRead, Investigation
from neonpro.entrypoints.api.pages import PageOut
from neonpro.entrypoints.api.routers.consents import FindingOut
from neonpro.entrypoints.api.routers.erasure import DecisionOut, ErasureOut
from neonpro.entrypoints.api.routers.incidents import AffectedOut, IncidentOut
from neonpro.entrypoints.api.routers.noshow import HighRiskAppointment, ModelInfo
from neonpro.services.consents import Finding
from neonpro.services.erasure import ErasureResult
from neonpro.services.noshow import HighRisk

# API shape -> (the record it shows, fields it leaves out, fields it adds)
SHAPES: dict[type[BaseModel], tuple[type, frozenset[str], frozenset[str]]] = {
    IncidentOut: (IncidentRead, frozenset({"clinic_id"}),
                  frozenset({"notification_required", "overdue"})),  # computed at answer time
    AffectedOut: (Investigation, frozenset(),
                  frozenset({"incident_id", "since", "until", "affected_patient_count"})),
    FindingOut: (Finding, frozenset(), frozenset()),  # the enum as its value
    DecisionOut: (Decision, frozenset(), frozenset()),  # the enums as their values
    HighRiskAppointment: (HighRisk, frozenset(), frozenset()),  # factors typed
    ErasureOut: (ErasureResult, frozenset(), frozenset()),  # decisions as DecisionOut
    # the model's label and what it was fitted on; its id and parameters stay inside
    ModelInfo: (StoredModel, frozenset({"id", "params", "version"}),
                frozenset({"model_version"})),
    PageOut: (Page, frozenset(), frozenset()),  # a page of any API shape
    # the trail's event as a DPO reads it; the hashes, the keyed patient reference and the
    # rest of what the chain seals stay with the chain
    AuditEvent: (ChainEvent, frozenset({"clinic_id", "patient_ref", "user_agent", "session_id",
                                        "retain_until", "prev_hash", "hash", "key_id"}),
                 frozenset()),
}


def declared(shape: type[BaseModel]) -> bool:
    """``PageOut[PatientRead]`` is declared by ``PageOut``."""
    origin = shape.__pydantic_generic_metadata__["origin"]
    return shape in SHAPES or origin in SHAPES


def fields_of(record: type) -> set[str]:
    if isinstance(record, type) and issubclass(record, BaseModel):
        return set(record.model_fields)
    if dataclasses.is_dataclass(record):
        return {f.name for f in dataclasses.fields(record)}
    return set()


@pytest.mark.parametrize("shape", list(SHAPES), ids=lambda s: s.__name__)
def test_api_shape_is_its_record_minus_and_plus_what_is_declared(shape: type[BaseModel]) -> None:
    record, left_out, added = SHAPES[shape]
    assert left_out <= fields_of(record)
    assert not added & fields_of(record)
    assert set(shape.model_fields) == (fields_of(record) - left_out) | added


def _classes(package: Any) -> list[type]:
    found: list[type] = []
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        module = importlib.import_module(info.name)
        found.extend(c for _, c in inspect.getmembers(module, inspect.isclass)
                     if c.__module__ == module.__name__)
    return found


def repeats(shape: type[BaseModel], records: list[type]) -> list[str]:
    """The records whose fields ``shape`` mostly repeats (3 or more, and most of its own)."""
    own = set(shape.model_fields)
    return [f"{r.__module__}.{r.__name__}" for r in records
            if r is not shape and len(common := own & fields_of(r)) >= 3
            and len(common) * 5 >= len(own) * 3]


def test_every_api_copy_of_a_record_is_declared() -> None:
    records = [c for p in (neonpro.domain, neonpro.services) for c in _classes(p)
               if fields_of(c)]
    shapes = [c for c in _classes(neonpro.entrypoints.api)
              if issubclass(c, BaseModel) and not declared(c) and fields_of(c)]
    undeclared = {s.__name__: found for s in shapes if (found := repeats(s, records))}
    assert undeclared == {}


def test_a_copy_is_found() -> None:
    """The check itself: a model repeating most of a record's fields is named."""

    class Copy(BaseModel):
        id: int
        description: str
        status: str
        mitigation: str | None

    assert repeats(Copy, [IncidentRead, Decision]) == [
        "neonpro.domain.schemas.incident.IncidentRead"]
