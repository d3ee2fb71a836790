"""Erasure decided by law, not by a flag: what happens to each category of a patient's data.

Pure rules. A patient with a clinical record (a consultation that took place, or clinical
data on file) is under the medical-record hold: 20 years after the last entry (Lei
13.787/2018 Art. 6; CFM Res. 1.821/2007 asks for permanent keeping of electronic records),
so the record and the identification that belongs to it are **blocked**, never deleted.
What no law requires keeping is deleted or anonymized (LGPD Art. 16, Art. 18 IV and VI).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from neonpro.domain.vocabulary import DataCategory as Cat


class Action(StrEnum):
    DELETE = "delete"
    ANONYMIZE = "anonymize"
    BLOCK = "block"
    KEEP = "keep"


HOLD = "Lei 13.787/2018 Art. 6; CFM Res. 1.821/2007 and 1.638/2002 (medical record, 20-year hold)"
UNNEEDED = "LGPD Art. 16 and Art. 18 IV/VI (no legal basis to keep)"
ANONYMIZED = "LGPD Art. 12 and Art. 16 IV (anonymized for the controller's own use)"
PROOF = ("LGPD Art. 7 VI and Art. 16 I "
         "(proof of consent kept for legal defence, identifiers removed)")
AUDIT = "LGPD Art. 37 and Art. 46 (records of processing; keyed references only)"
BILLING = "CTN Art. 173-174 and ANS RN 305/2012 (billing kept with the medical record)"


@dataclass(frozen=True, slots=True)
class Decision:
    category: Cat
    action: Action
    legal_reference: str


@dataclass(frozen=True, slots=True)
class PatientFacts:
    """What the engine needs to know; ``has_clinical_record`` decides the hold."""

    has_clinical_record: bool
    has_consent_records: bool


def decide(facts: PatientFacts) -> list[Decision]:
    """One decision per category of the patient's data."""
    held = facts.has_clinical_record
    out = [
        Decision(Cat.CLINICAL, Action.BLOCK if held else Action.DELETE, HOLD if held else UNNEEDED),
        Decision(Cat.IDENTIFICATION, Action.BLOCK if held else Action.ANONYMIZE,
                 HOLD if held else ANONYMIZED),
        Decision(Cat.ADDRESS, Action.BLOCK if held else Action.ANONYMIZE,
                 HOLD if held else ANONYMIZED),
        Decision(Cat.INSURANCE, Action.BLOCK if held else Action.DELETE,
                 BILLING if held else UNNEEDED),
        Decision(Cat.FINANCIAL, Action.BLOCK if held else Action.DELETE,
                 BILLING if held else UNNEEDED),
        Decision(Cat.CONTACT, Action.DELETE, UNNEEDED),
        Decision(Cat.EMERGENCY_CONTACT, Action.DELETE, UNNEEDED),
        Decision(Cat.IMAGES, Action.DELETE, UNNEEDED),
        Decision(Cat.MARKETING, Action.DELETE, UNNEEDED),
        Decision(Cat.AUDIT, Action.KEEP, AUDIT),
    ]
    if facts.has_consent_records:
        out.append(Decision(Cat.CONSENT, Action.KEEP, PROOF))
    return out


ORDER = (Cat.CLINICAL, Cat.IDENTIFICATION, Cat.ADDRESS, Cat.INSURANCE, Cat.FINANCIAL,
         Cat.CONTACT, Cat.EMERGENCY_CONTACT, Cat.IMAGES, Cat.MARKETING, Cat.AUDIT, Cat.CONSENT)


def in_order(decisions: list[Decision]) -> list[Decision]:
    """``decisions`` in the order :func:`decide` gives them (a ledger row keeps a map)."""
    rank = {category: i for i, category in enumerate(ORDER)}
    return sorted(decisions, key=lambda d: rank.get(d.category, len(rank)))


def from_ledger(decisions: dict[str, dict[str, str]]) -> list[Decision]:
    """A ledger row's ``decisions`` (category -> action and legal reference) as decisions."""
    return in_order([Decision(Cat(category), Action(d["action"]), d["legal_reference"])
                     for category, d in decisions.items()])


def outcome(decisions: list[Decision]) -> str:
    return "blocked" if any(d.action is Action.BLOCK for d in decisions) else "anonymized"


@dataclass(frozen=True, slots=True)
class LedgerDecision:
    """A patient's latest decision in the erasure ledger (``outcome``: blocked or
    anonymized), for re-applying it after a restore."""

    clinic_id: uuid.UUID
    patient_id: uuid.UUID
    outcome: str
