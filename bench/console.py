"""The DPO console's pages on the demo data: median and p95 answer time of each page, and
(with ``--screenshots DIR``) a screenshot of each page in Chromium for docs/console.md.

    .venv/bin/python bench/console.py                      # 120 patients, 12 months, 50 requests a page
    .venv/bin/python bench/console.py -n 100 --patients 300
    .venv/bin/python bench/console.py --screenshots docs/console

Setup: a scratch database ``neonpro_bench_*`` on the server of ``--url`` (only used to
CREATE and DROP it), migrated; a fresh key file and JWT secret; the demo data that
``neonpro serve --demo`` loads (``seed_demo``: the same patients and months by default);
then, in the first demo clinic, data-subject requests received 0 to 25 days ago (some
overdue, some answered), three incidents (one notified), and a DPO account. ``neonpro
serve --no-migrate --workers 1`` runs as a subprocess on a free loopback port (environment
``test``: plain HTTP, so the session cookie is not marked Secure).

The client signs in through the sign-in form as the DPO, opens the today page once so the
console verifies the audit chain in the background (pages show the last verification:
docs/console.md), waits for that verification, then requests each page ``-n`` times in a
row (one keep-alive connection, closed loop) and prints median and p95 wall time as the
client saw it, and the time of one "verify now" (the whole chain recomputed).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _setup

from neonpro.adapters.auth import hash_password
from neonpro.adapters.crypto import generate_key_file
from neonpro.adapters.db import migrate
from neonpro.bootstrap import Container
from neonpro.config import Environment, Settings
from neonpro.devtools.demo import seed_demo
from neonpro.devtools.demo_sizes import RUN_DEMO_MONTHS, RUN_DEMO_PATIENTS
from neonpro.domain.actors import Actor, SystemActors
from neonpro.domain.paging import PageRequest
from neonpro.domain.schemas.clinic import StaffUserCreate
from neonpro.domain.vocabulary import ClinicRole, DataCategory, DataSubjectRequestKind
from neonpro.services import clinics, incidents, lgpd_requests
from neonpro.services import patients as psvc
from neonpro.services.incidents import IncidentCreate, Notification
from neonpro.services.lgpd_requests import RequestFulfil, RequestOpen

VENV_BIN = Path(sys.executable).parent
PASSWORD = "senha do encarregado para o bench"  # noqa: S105  (a scratch account)
EMAIL = "dpo.bench@clinica.example"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class World:
    url: str
    workdir: Path
    settings: Settings
    clinic: uuid.UUID
    dpo: uuid.UUID
    request_id: uuid.UUID
    incident_id: uuid.UUID
    deletion_id: uuid.UUID  # a pending deletion request: its page shows the erasure plan
    patient_id: uuid.UUID
    patient_cpf: str
    name_part: str  # the patient's family name: the finder's search by name
    seed_seconds: float


def _seed_console_data(box: Container, clinic: uuid.UUID, patients: list[uuid.UUID],
                       dpo: uuid.UUID) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """Requests 0-25 days old (a third answered) and three incidents (one notified); a
    request, an incident and a pending deletion request to show."""
    rng = random.Random(20261205)
    actor = Actor(dpo, "dpo")
    now = datetime.now(UTC)
    kinds = list(DataSubjectRequestKind)
    requests = []
    for i, age in enumerate((25, 20, 18, 14, 13, 12, 10, 7, 5, 3, 2, 1, 0, 0, 16)):
        opened = lgpd_requests.open_request(box.uow(clinic, actor), RequestOpen(
            patient_id=rng.choice(patients), kind=kinds[i % len(kinds)],
            received_at=now - timedelta(days=age, hours=rng.randrange(8))))
        requests.append(opened.id)
        if i % 3 == 0:
            lgpd_requests.verify_identity(box.uow(clinic, actor), opened.id)
            lgpd_requests.fulfil_request(box.uow(clinic, actor), opened.id,
                                         RequestFulfil(response=f"resposta {i}"))
    found = []
    for days, notified in ((9, True), (2, False), (0, False)):
        incident = incidents.register_incident(box.uow(clinic, actor), IncidentCreate(
            detected_at=now - timedelta(days=days, hours=3),
            description="credencial de recepção usada fora do expediente",
            affected_data_categories=[DataCategory.CONTACT, DataCategory.CLINICAL],
            affected_patient_count=rng.randrange(1, 40)))
        if notified:
            for which in ("anpd", "subjects"):
                incidents.notify(box.uow(clinic, actor), incident.id,
                                 Notification(which=which))  # type: ignore[arg-type]
        found.append(incident.id)
    return requests[1], found[1], requests[kinds.index(DataSubjectRequestKind.DELETION)]


def build_world(args: argparse.Namespace, url: str, workdir: Path) -> World:
    migrate.upgrade(url, _setup.ROLES)
    key_file = workdir / "keys.json"
    generate_key_file(key_file)
    settings = Settings(environment=Environment.TEST, database_url=url, key_file=key_file,
                        jwt_secret=uuid.uuid4().hex + uuid.uuid4().hex, _env_file=None)
    box = Container(settings, database_url=url)
    try:
        started = time.perf_counter()
        demo = seed_demo(box, patients=args.patients, months=args.months)
        clinic = demo.clinics[0]
        dpo = clinics.add_staff_member(box.service_uow(SystemActors.CLI), clinic,
                                       StaffUserCreate(email=EMAIL, display_name="DPO Bench",
                                                       password_hash=hash_password(PASSWORD)),
                                       ClinicRole.DPO)[0].id
        listed = psvc.search_patients(box.uow(clinic, SystemActors.CLI),
                                      page=PageRequest(limit=40, with_total=False))
        request_id, incident_id, deletion_id = _seed_console_data(
            box, clinic, [p.id for p in listed.items], dpo)
        box.seal_audit()
        seconds = time.perf_counter() - started
        patient = lgpd_requests.get_request(box.uow(clinic, SystemActors.CLI),
                                            request_id).patient_id
        record = psvc.get_patient(box.uow(clinic, SystemActors.CLI), patient)
    finally:
        box.close()
    return World(url, workdir, settings, clinic, dpo, request_id, incident_id, deletion_id,
                 patient, record.cpf or "", record.full_name.split()[-1], seconds)


# ----------------------------------------------------------------------------- server
class Server:
    def __init__(self, world: World) -> None:
        self.port = _setup_free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = world.workdir / "server.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEONPRO_")}
        env.update(NEONPRO_ENVIRONMENT="test", NEONPRO_DATABASE_URL=world.url,
                   NEONPRO_KEY_FILE=str(world.settings.key_file),
                   NEONPRO_JWT_SECRET=world.settings.jwt_secret.get_secret_value())  # type: ignore[union-attr]
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "neonpro"), "serve", "--host", "127.0.0.1", "--port",
             str(self.port), "--no-migrate", "--workers", "1"],
            env=env, cwd=world.workdir, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        with httpx.Client(base_url=self.base, timeout=5) as client:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited:\n{self.log_path.read_text()[-3000:]}")
                try:
                    if client.get("/health/ready").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("server not ready")
                time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()


def _setup_free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sign_in(client: httpx.Client) -> str:
    form = client.get("/console/entrar")
    token = _CSRF.search(form.text).group(1)  # type: ignore[union-attr]
    answer = client.post("/console/entrar", data={"csrf": token, "email": EMAIL,
                                                  "password": PASSWORD})
    assert answer.status_code == 303, answer.text
    today = client.get("/console")
    assert "Última verificação" in today.text or "em andamento" in today.text, today.text[:500]
    return _CSRF.search(today.text).group(1)  # type: ignore[union-attr]


def wait_for_verification(client: httpx.Client, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while "Última verificação" not in client.get("/console").text:
        if time.monotonic() > deadline:
            raise RuntimeError("the chain verification did not finish")
        time.sleep(0.5)


def pages(world: World) -> list[tuple[str, str]]:
    return [
        ("hoje", "/console"),
        ("solicitações", "/console/solicitacoes"),
        ("solicitações em atraso", "/console/solicitacoes?atraso=1"),
        ("uma solicitação", f"/console/solicitacoes/{world.request_id}"),
        ("uma eliminação (o plano)", f"/console/solicitacoes/{world.deletion_id}"),
        ("incidentes", "/console/incidentes"),
        ("um incidente", f"/console/incidentes/{world.incident_id}"),
        ("auditoria (30 dias)", "/console/auditoria"),
        ("auditoria: investigar usuário", f"/console/auditoria?ator={world.dpo}&investigar=1"),
        ("consentimentos (cobertura)", "/console/consentimentos"),
        ("consentimentos de um paciente", f"/console/consentimentos?paciente={world.patient_id}"),
        ("relatório (30 dias)", "/console/relatorio"),
    ]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def searches(world: World, csrf: str) -> list[tuple[str, dict[str, str]]]:
    """The patient finder's POSTs (the CPF or the name never in a URL)."""
    return [("pacientes: busca por CPF", {"csrf": csrf, "busca": world.patient_cpf}),
            ("pacientes: busca por nome", {"csrf": csrf, "busca": world.name_part})]


def measure(client: httpx.Client, path: str, n: int,
            form: dict[str, str] | None = None) -> tuple[float, float, int]:
    """GET ``path`` (or POST ``form`` to it) once to warm, then ``n`` times, timed."""
    def ask() -> httpx.Response:
        return client.post(path, data=form) if form else client.get(path)

    ask()  # warm: templates compiled, statements prepared
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        answer = ask()
        times.append((time.perf_counter() - t0) * 1000)
        assert answer.status_code == 200, (path, answer.status_code)
    return statistics.median(times), percentile(times, 95), len(answer.content)


SHOTS = [("entrar", "/console/entrar"), ("hoje", "/console"),
         ("solicitacoes", "/console/solicitacoes"), ("solicitacao", "{request}"),
         ("solicitacao-eliminacao", "{deletion}"),
         ("incidentes", "/console/incidentes"), ("incidente", "{incident}"),
         ("auditoria", "/console/auditoria?ator={dpo}&investigar=1"),
         ("consentimentos", "/console/consentimentos?paciente={patient}"),
         ("relatorio", "/console/relatorio")]


def screenshots(base: str, world: World, directory: Path, chromium: str) -> list[Path]:
    """One PNG per page (laptop, 1280 px), the today page on a tablet (820 px), and the
    report as printed."""
    from playwright.sync_api import sync_playwright

    directory.mkdir(parents=True, exist_ok=True)
    names = {"request": f"/console/solicitacoes/{world.request_id}",
             "deletion": f"/console/solicitacoes/{world.deletion_id}",
             "incident": f"/console/incidentes/{world.incident_id}",
             "dpo": str(world.dpo), "patient": str(world.patient_id)}
    taken = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium,
                                             args=["--no-sandbox", "--disable-gpu"])
        context = browser.new_context(base_url=base, viewport={"width": 1280, "height": 860},
                                      locale="pt-BR")
        page = context.new_page()
        page.goto("/console/entrar")
        page.screenshot(path=str(directory / "entrar.png"))
        page.get_by_label("E-mail").fill(EMAIL)
        page.get_by_label("Senha").fill(PASSWORD)
        page.get_by_role("button", name="Entrar").click()
        page.wait_for_url("**/console")
        for name, path in SHOTS[1:]:
            page.goto(path.format(**names))
            taken.append(directory / f"{name}.png")
            # the audit page lists 100 events: its first screen is what it shows
            page.screenshot(path=str(taken[-1]), full_page=name != "auditoria")
        page.goto("/console/pacientes")
        page.get_by_label("CPF ou nome").fill(world.name_part)
        page.get_by_role("button", name="Buscar").click()
        taken.append(directory / "pacientes.png")
        page.screenshot(path=str(taken[-1]), full_page=True)
        page.goto("/console/relatorio")
        page.emulate_media(media="print")
        taken.append(directory / "relatorio-impresso.png")
        page.screenshot(path=str(taken[-1]), full_page=True)
        page.emulate_media(media="screen")
        page.set_viewport_size({"width": 820, "height": 1180})
        page.goto("/console")
        taken.append(directory / "hoje-tablet.png")
        page.screenshot(path=str(taken[-1]), full_page=True)
        browser.close()
    return [directory / "entrar.png", *taken]


def run(args: argparse.Namespace, world: World) -> None:
    server = Server(world)
    try:
        with httpx.Client(base_url=server.base, timeout=60) as client:
            sign_in(client)
            wait_for_verification(client)
            print(f"\n{'page':<34}{'median ms':>10}{'p95 ms':>9}{'KiB':>7}  goal < 200 ms")
            print("-" * 76)
            csrf = _CSRF.search(client.get("/console/auditoria").text).group(1)  # type: ignore[union-attr]
            asked: list[tuple[str, str, dict[str, str] | None]] = [
                (name, path, None) for name, path in pages(world)]
            asked += [(name, "/console/pacientes", form) for name, form in searches(world, csrf)]
            for name, path, form in asked:
                median, p95, size = measure(client, path, args.requests, form)
                verdict = "met" if p95 < 200 else "NOT met"
                print(f"{name:<34}{median:>10.1f}{p95:>9.1f}{size / 1024:>7.1f}  {verdict}")
            t0 = time.perf_counter()
            client.post("/console/auditoria/verificar", data={"csrf": csrf})
            print(f"\n'Verificar agora' (the whole chain recomputed): "
                  f"{(time.perf_counter() - t0) * 1000:.0f} ms")
        if args.screenshots:
            chromium = shutil.which(args.chromium) or args.chromium
            for shot in screenshots(server.base, world, Path(args.screenshots), chromium):
                print(f"screenshot {shot}")
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default=os.environ.get(
        "NEONPRO_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("-n", "--requests", type=int, default=50)
    parser.add_argument("--patients", type=int, default=RUN_DEMO_PATIENTS)
    parser.add_argument("--months", type=int, default=RUN_DEMO_MONTHS)
    parser.add_argument("--screenshots", metavar="DIR")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(f"bench/console.py: {args.patients} patients, {args.months} months, "
          f"{args.requests} requests a page; Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, load {load:.1f}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    url = _setup.create_scratch_database(args.url)
    try:
        with tempfile.TemporaryDirectory(prefix="neonpro-console-bench-") as tmp:
            world = build_world(args, url, Path(tmp))
            print(f"seeded in {world.seed_seconds:.0f} s")
            run(args, world)
    finally:
        _setup.drop_scratch_database(args.url, url)


if __name__ == "__main__":
    main()
