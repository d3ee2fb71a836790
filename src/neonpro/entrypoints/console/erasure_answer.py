"""The answer a patient is sent when the console erases them for a deletion request.

Its words are frozen: the request keeps only the SHA-256 of this text, and the request's
page rebuilds the text from the erasure ledger and shows it only if it hashes to what was
kept. A change of a console label, or of the engine's English legal references, must not
change an answer already sent, so this module has its own tables, keyed by the values the
ledger stores. New wording is a new version appended to :data:`VERSIONS` (the newest
writes; every version is tried when rebuilding); never an edit of an old one
(``tests/unit/test_console_rules.py`` pins version 1's text)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

from neonpro.domain.erasure import Decision

# version 1 (2026-12-05); keys as the erasure ledger stores them
_CATEGORY_V1 = {
    "clinical": "Dados clínicos", "identification": "Identificação", "address": "Endereço",
    "insurance": "Convênio", "financial": "Financeiro", "contact": "Contato",
    "emergency_contact": "Contato de emergência", "images": "Imagens",
    "marketing": "Marketing", "audit": "Auditoria", "consent": "Consentimento",
}
_ACTION_V1 = {"delete": "eliminar", "anonymize": "anonimizar", "block": "bloquear",
              "keep": "manter"}
_GROUNDS_V1 = {
    "Lei 13.787/2018 Art. 6; CFM Res. 1.821/2007 and 1.638/2002 (medical record, 20-year "
    "hold)": "Lei 13.787/2018, art. 6º; Res. CFM 1.821/2007 e 1.638/2002 (prontuário: "
             "guarda de 20 anos)",
    "LGPD Art. 16 and Art. 18 IV/VI (no legal basis to keep)":
        "LGPD, art. 16 e art. 18, IV e VI (sem base legal para manter)",
    "LGPD Art. 12 and Art. 16 IV (anonymized for the controller's own use)":
        "LGPD, art. 12 e art. 16, IV (anonimizado, para uso exclusivo do controlador)",
    "LGPD Art. 7 VI and Art. 16 I (proof of consent kept for legal defence, identifiers "
    "removed)": "LGPD, art. 7º, VI e art. 16, I (prova do consentimento guardada para "
                "defesa, sem identificadores)",
    "LGPD Art. 37 and Art. 46 (records of processing; keyed references only)":
        "LGPD, art. 37 e art. 46 (registro das operações; só referências por chave)",
    "CTN Art. 173-174 and ANS RN 305/2012 (billing kept with the medical record)":
        "CTN, arts. 173 e 174, e RN ANS 305/2012 (faturamento guardado com o prontuário)",
}


def _v1(decisions: list[Decision], at: datetime, zone: str) -> str:
    when = at.astimezone(ZoneInfo(zone)).strftime("%d/%m/%Y %H:%M")
    lines = [f"Atendendo à sua solicitação de eliminação (LGPD, art. 18, VI), em {when}:"]
    lines += [f"- {_CATEGORY_V1.get(d.category.value, d.category.value)}: "
              f"{_ACTION_V1.get(d.action.value, d.action.value)} "
              f"({_GROUNDS_V1.get(d.legal_reference, d.legal_reference)})"
              for d in decisions]
    return "\n".join(lines)


Answer = Callable[[list[Decision], datetime, str], str]
VERSIONS: tuple[Answer, ...] = (_v1,)


def write(decisions: list[Decision], at: datetime, zone: str) -> str:
    """The answer in the newest wording."""
    return VERSIONS[-1](decisions, at, zone)


def candidates(decisions: list[Decision], at: datetime, zone: str) -> Iterator[str]:
    """The answer in every wording there has been, newest first."""
    for version in reversed(VERSIONS):
        yield version(decisions, at, zone)
