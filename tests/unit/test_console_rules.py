"""The console's pure parts: the chain status it shows (the last verification, refreshed
in the background when stale), form parsing and the Portuguese labels and dates."""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from datetime import UTC, date, datetime
from typing import Any

import pytest

from neonpro.domain.erasure import PatientFacts, decide, in_order
from neonpro.domain.errors import Conflict, InvalidTransition, NotFound, ValidationFailed
from neonpro.domain.vocabulary import DataSubjectRequestStatus
from neonpro.entrypoints.console import erasure_answer, forms, labels, render, verification
from neonpro.entrypoints.console.verification import ChainStatus

CLINIC = uuid.uuid4()


class _Box:
    audit_chain = object()


def test_the_chain_status_verifies_in_the_background_and_keeps_the_result(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[uuid.UUID] = []
    release = threading.Event()

    def verify(_chains: Any, _actor: Any, clinic: uuid.UUID) -> dict[str, Any]:
        calls.append(clinic)
        release.wait(5)
        return {"ok": True, "sealed": 12, "unsealed": 1, "broken_at": None}

    monkeypatch.setattr(verification.audit_svc, "verify_clinic", verify)
    status = ChainStatus(max_age_s=60)
    box: Any = _Box()
    assert status.latest(box, None, CLINIC) is None  # type: ignore[arg-type]
    assert status.running(CLINIC)
    assert status.latest(box, None, CLINIC) is None  # type: ignore[arg-type]  # not twice
    release.set()
    deadline = time.monotonic() + 5
    while status.running(CLINIC) and time.monotonic() < deadline:
        time.sleep(0.01)
    found = status.latest(box, None, CLINIC)  # type: ignore[arg-type]
    assert found is not None
    assert (found.ok, found.sealed, found.unsealed, found.broken_at) == (True, 12, 1, None)
    assert calls == [CLINIC]  # fresh: no new verification


def test_a_failed_background_verification_is_retried_by_the_next_page(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: Any) -> dict[str, Any]:
        raise RuntimeError("database down")

    monkeypatch.setattr(verification.audit_svc, "verify_clinic", broken)
    status = ChainStatus()
    box: Any = _Box()
    assert status.latest(box, None, CLINIC) is None  # type: ignore[arg-type]
    deadline = time.monotonic() + 5
    while status.running(CLINIC) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not status.running(CLINIC)


def test_forms_name_the_field_never_the_value() -> None:
    with pytest.raises(ValidationFailed) as bad:
        forms.an_id({"patient_id": "12345678900"}, "patient_id")
    assert bad.value.field == "patient_id"
    assert "12345678900" not in str(bad.value)
    assert forms.maybe_id({"x": " "}, "x") is None
    assert forms.choice({"s": "open"}, "s", DataSubjectRequestStatus) == "open"
    with pytest.raises(ValidationFailed):
        forms.count({"n": "-3"}, "n")
    first, last, since, until = forms.period({"q:de": "2026-04-01", "q:ate": "2026-04-02"},
                                             "America/Sao_Paulo")
    assert (first, last) == (date(2026, 4, 1), date(2026, 4, 2))
    assert since == datetime(2026, 4, 1, 3, tzinfo=UTC)
    assert until == datetime(2026, 4, 3, 3, tzinfo=UTC)
    moment = forms.moment({"at": "2026-04-02T10:00"}, "at", "America/Sao_Paulo")
    assert moment is not None
    assert moment.astimezone(UTC) == datetime(2026, 4, 2, 13, tzinfo=UTC)


def test_labels_and_dates_read_in_portuguese() -> None:
    assert labels.label("in_progress") == "Em andamento"
    assert labels.label(None) == "—"
    assert labels.yes_no(value=True) == "Sim"
    assert labels.local(datetime(2026, 4, 8, 2, 59, tzinfo=UTC)) == "07/04/2026 23:59"
    assert labels.number(12345) == "12.345"
    assert labels.incident_status("open") == "Aberto"


def test_refusals_become_portuguese_sentences() -> None:
    assert render.status_of(NotFound("request", uuid.uuid4())) == 404
    assert "não encontrado" in render.message(NotFound("request", uuid.uuid4()))
    assert "estado atual" in render.message(InvalidTransition("request", "fulfilled", "refused"))
    assert "identidade" in render.message(Conflict("x", "identity_verified_at"))
    assert "«motivo»" in render.message(ValidationFailed("reason", "blank"))


# --------------------------------------------------------------- the erasure answer, frozen
ANSWER_V1_HELD = (
    "Atendendo à sua solicitação de eliminação (LGPD, art. 18, VI), em 05/12/2026 11:30:\n"
    "- Dados clínicos: bloquear (Lei 13.787/2018, art. 6º; Res. CFM 1.821/2007 e 1.638/2002 "
    "(prontuário: guarda de 20 anos))\n"
    "- Identificação: bloquear (Lei 13.787/2018, art. 6º; Res. CFM 1.821/2007 e 1.638/2002 "
    "(prontuário: guarda de 20 anos))\n"
    "- Endereço: bloquear (Lei 13.787/2018, art. 6º; Res. CFM 1.821/2007 e 1.638/2002 "
    "(prontuário: guarda de 20 anos))\n"
    "- Convênio: bloquear (CTN, arts. 173 e 174, e RN ANS 305/2012 (faturamento guardado com "
    "o prontuário))\n"
    "- Financeiro: bloquear (CTN, arts. 173 e 174, e RN ANS 305/2012 (faturamento guardado "
    "com o prontuário))\n"
    "- Contato: eliminar (LGPD, art. 16 e art. 18, IV e VI (sem base legal para manter))\n"
    "- Contato de emergência: eliminar (LGPD, art. 16 e art. 18, IV e VI (sem base legal para "
    "manter))\n"
    "- Imagens: eliminar (LGPD, art. 16 e art. 18, IV e VI (sem base legal para manter))\n"
    "- Marketing: eliminar (LGPD, art. 16 e art. 18, IV e VI (sem base legal para manter))\n"
    "- Auditoria: manter (LGPD, art. 37 e art. 46 (registro das operações; só referências "
    "por chave))\n"
    "- Consentimento: manter (LGPD, art. 7º, VI e art. 16, I (prova do consentimento "
    "guardada para defesa, sem identificadores))")


@pytest.mark.parametrize(("held", "digest"), [
    (True, "6b821cb871a8bce8bd949d71144d62ac33e2276cebdec111f1930350c1a6537c"),
    (False, "fa015f793e9a117df95085349ec1d2b60cd4b24b3be4b3bff3b54934bfe788d3"),
])
def test_the_erasure_answers_words_are_frozen(held: bool, digest: str) -> None:
    """The request keeps only the hash of the answer; its page rebuilds the text from the
    ledger. Version 1's words must never change (a new wording is a new version), or every
    answer already sent could no longer be shown: this fails on any edit of them, of the
    console's labels leaking in, or of the engine's references and their order."""
    decisions = in_order(decide(PatientFacts(has_clinical_record=held,
                                             has_consent_records=held)))
    at = datetime(2026, 12, 5, 14, 30, tzinfo=UTC)
    text = erasure_answer.VERSIONS[0](decisions, at, "America/Sao_Paulo")
    if held:
        assert text == ANSWER_V1_HELD
    assert hashlib.sha256(text.encode()).hexdigest() == digest
    assert text in erasure_answer.candidates(decisions, at, "America/Sao_Paulo")
