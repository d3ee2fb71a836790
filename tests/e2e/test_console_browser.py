"""The DPO console in a real browser: Debian's Chromium driven by Playwright, against the
application served by uvicorn on a free port over the test database.

A DPO signs in, reads the today page, finds the patient who calls by their CPF, registers
their request and takes it from open to fulfilled (identity verified, the export
downloaded, fulfilled), registers an incident and records
both communications, and prints the compliance report to PDF. Every page visited is
checked for labelled inputs, one h1 and headings in order.

Skipped, saying why, where Chromium or Playwright is missing, unless
``NEONPRO_REQUIRE_BROWSER=1`` (CI installs Chromium and sets it): then it fails.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from neonpro.bootstrap import Container
from neonpro.domain.actors import SystemActors
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.domain.schemas.patient import PatientCreate
from neonpro.entrypoints.api.app import create_app
from neonpro.services import clinics, incidents, lgpd_requests, patients
from tests import valid
from tests.e2e.console_helpers import PASSWORD, staff
from tests.reliability.harness import ThreadServer

SYSTEM = SystemActors.CLI
CHROMIUM = os.environ.get("NEONPRO_CHROMIUM", "/usr/bin/chromium")

# every visible input, select and textarea has a label; one h1; no heading skips a level
A11Y = """() => {
  const problems = [];
  for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
    const named = (el.id && document.querySelector(`label[for="${el.id}"]`)) || el.closest('label')
      || el.getAttribute('aria-label');
    if (!named) problems.push('unlabelled ' + (el.name || el.id));
  }
  const levels = [...document.querySelectorAll('h1,h2,h3,h4')].map(h => +h.tagName[1]);
  if (levels.filter(l => l === 1).length !== 1) problems.push('h1 count');
  levels.reduce((prev, l) => { if (l > prev + 1) problems.push('skip to h' + l); return l; }, 1);
  if (document.documentElement.lang !== 'pt-BR') problems.push('lang');
  return problems;
}"""


def _browser_or_skip() -> Any:
    reason = None
    try:
        from playwright.sync_api import sync_playwright  # noqa: PLC0415
    except ImportError:
        reason = "the playwright package is not installed (pip install -e .[dev])"
    if reason is None and not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        reason = (f"no Chromium at {CHROMIUM} (apt-get install chromium chromium-driver; "
                  "NEONPRO_CHROMIUM names another)")
    if reason is not None:
        if os.environ.get("NEONPRO_REQUIRE_BROWSER") == "1":
            pytest.fail(f"NEONPRO_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    return sync_playwright


@pytest.fixture(scope="module")
def server(box: Container) -> Iterator[str]:
    running = ThreadServer(create_app(box))
    try:
        yield running.base
    finally:
        running.stop()


@pytest.fixture(scope="module")
def page(server: str) -> Iterator[Any]:
    sync_playwright = _browser_or_skip()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                             args=["--no-sandbox", "--disable-gpu"])
        context = browser.new_context(base_url=server, accept_downloads=True,
                                      locale="pt-BR", viewport={"width": 1280, "height": 900})
        try:
            yield context.new_page()
        finally:
            context.close()
            browser.close()


def _accessible(page: Any) -> None:
    assert page.evaluate(A11Y) == [], page.url


def test_a_dpos_day_in_the_browser(box: Container, page: Any, tmp_path: Path) -> None:
    clinic = clinics.create_clinic(box.service_uow(SYSTEM), ClinicCreate(
        name="Clínica no Navegador")).id
    email = staff(box, clinic)
    cpf = valid.cpf(70_000 + uuid.uuid4().int % 1_000_000)
    patient = patients.register_patient(box.uow(clinic, SYSTEM), PatientCreate(
        full_name="Titular no Navegador", cpf=cpf)).id

    page.goto("/console")  # a stranger is sent to sign in
    assert page.url.endswith("/console/entrar")
    _accessible(page)
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Senha").fill(PASSWORD)
    page.get_by_role("button", name="Entrar").click()
    page.wait_for_url("**/console")
    assert page.get_by_role("heading", name="Hoje", level=1).is_visible()
    for heading in ("Solicitações de titulares", "Incidentes de segurança",
                    "Trilha de auditoria", "Retenção pendente"):
        assert page.get_by_role("heading", name=heading).is_visible()
    _accessible(page)

    request_id = _find_and_register(page, cpf)
    _fulfil_request(page, request_id, tmp_path)
    stored = lgpd_requests.get_request(box.uow(clinic, SYSTEM), request_id)
    assert (stored.status, stored.patient_id) == ("fulfilled", patient)

    _register_and_notify(page)
    listed = incidents.list_incidents(box.uow(clinic, SYSTEM)).items
    assert len(listed) == 1
    assert listed[0].notified_anpd_at is not None
    assert listed[0].notified_subjects_at is not None

    _print_report(page, tmp_path)


def _find_and_register(page: Any, cpf: str) -> uuid.UUID:
    """The patient calls with their CPF: found, and their access request registered."""
    page.get_by_role("link", name="Pacientes").click()
    _accessible(page)
    page.get_by_label("CPF ou nome").fill(f"{cpf[:3]}.{cpf[3:6]}.{cpf[6:9]}-{cpf[9:]}")
    page.get_by_role("button", name="Buscar").click()
    assert page.get_by_role("cell", name="Titular no Navegador", exact=True).is_visible()
    assert page.get_by_text(f"***.{cpf[3:6]}.{cpf[6:9]}-**").is_visible()
    assert "?" not in page.url  # the CPF stays out of the address
    _accessible(page)
    page.get_by_role("link", name="Solicitações de Titular no Navegador").click()
    page.get_by_label("Direito exercido").select_option(label="Acesso aos dados")
    page.get_by_role("button", name="Registrar").click()
    assert page.get_by_role("status").inner_text().startswith("Solicitação registrada")
    assert page.get_by_text("Titular no Navegador").is_visible()
    return uuid.UUID(page.url.split("?")[0].rsplit("/", 1)[-1])


def _fulfil_request(page: Any, request_id: uuid.UUID, tmp_path: Path) -> None:
    page.get_by_role("link", name="Solicitações").click()
    _accessible(page)
    page.locator(f'a[href="/console/solicitacoes/{request_id}"]').click()
    assert page.get_by_text("Aberta").first.is_visible()
    _accessible(page)
    page.get_by_role("button", name="Identidade verificada").click()
    assert page.get_by_role("status").inner_text() == "Identidade do titular verificada."
    with page.expect_download() as download:
        page.get_by_role("button", name="Baixar exportação").click()
    saved = tmp_path / "export.json"
    download.value.save_as(saved)
    digest = hashlib.sha256(saved.read_bytes()).hexdigest()
    page.reload()
    assert page.get_by_text("Em andamento").first.is_visible()
    page.get_by_role("button", name="Concluir como atendida").click()
    assert page.get_by_role("status").inner_text() == "Solicitação atendida."
    assert page.get_by_text(digest).is_visible()  # the bytes the patient received


def _register_and_notify(page: Any) -> None:
    page.get_by_role("link", name="Incidentes").click()
    _accessible(page)
    page.get_by_label("Detectado em").fill("2026-04-02T09:30")
    page.get_by_label("Dados clínicos").check()
    page.get_by_label("Descrição (interna").fill("acesso indevido a 3 prontuários")
    page.get_by_label("Titulares afetados").fill("3")
    page.get_by_role("button", name="Registrar incidente").click()
    assert page.get_by_role("status").is_visible()
    assert page.get_by_text("08/04/2026 23:59").is_visible()  # 3 business days, Good Friday
    _accessible(page)
    for party in ("ANPD", "Titulares"):
        page.get_by_label("Comunicado a").select_option(label=party)
        page.get_by_role("button", name="Registrar comunicação").click()
        assert page.get_by_role("status").inner_text() == "Comunicação registrada."
    assert page.get_by_text("em atraso").count() == 0


def _print_report(page: Any, tmp_path: Path) -> None:
    page.get_by_role("link", name="Relatório").click()
    assert page.get_by_role("heading", name="Relatório de conformidade LGPD").is_visible()
    assert page.get_by_text("Clínica no Navegador").first.is_visible()
    assert page.get_by_role("button", name="Imprimir").is_visible()
    _accessible(page)
    page.emulate_media(media="print")
    assert not page.get_by_role("navigation").is_visible()  # the print stylesheet
    assert not page.get_by_role("button", name="Imprimir").is_visible()
    pdf = tmp_path / "relatorio.pdf"
    page.pdf(path=str(pdf), format="A4")
    assert pdf.read_bytes().startswith(b"%PDF")
    page.emulate_media(media="screen")
