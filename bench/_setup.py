"""Shared benchmark setup: a scratch database, migrated, filled with COPY.

Rows are built in Python with the project's own :class:`FieldCipher` and
:class:`BlindIndexer`, so every encrypted column holds a real AES-GCM value bound
to its row and every blind index is the real HMAC: the application decrypts and
looks them up exactly as it would in production.

The load runs as ``neonpro_service`` (BYPASSRLS): the owner role cannot see or
COPY rows into tables with FORCE ROW LEVEL SECURITY, the application role cannot
COPY into an RLS table at all. ``search_name`` is a generated column and is left
out of the column list.

Nothing here touches the database named in the admin URL: it only runs
``CREATE DATABASE`` / ``DROP DATABASE`` for a ``neonpro_bench_*`` name.
"""

from __future__ import annotations

import os
import random
import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import psycopg
from sqlalchemy.engine import make_url

from neonpro.adapters.crypto import BlindIndexer, FieldCipher, KeyRing
from neonpro.adapters.db import migrate
from neonpro.adapters.db.repositories.patient import ENCRYPTED, NAME
from neonpro.adapters.db.security import Roles
from neonpro.config import Environment, Settings
from neonpro.domain.values import cns_is_valid, cpf_check_digits

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
ROLES = Roles()

GIVEN = (
    "Ana", "Maria", "João", "José", "Francisco", "Antônio", "Carlos", "Paulo", "Pedro", "Lucas",
    "Luiz", "Marcos", "Luís", "Gabriel", "Rafael", "Juliana", "Mariana", "Fernanda", "Patrícia",
    "Aline", "Camila", "Letícia", "Beatriz", "Larissa", "Bruna", "Vitória", "Júlia", "Amanda",
    "Gustavo", "Felipe", "Thiago", "Bruno", "Eduardo", "Rodrigo", "Daniel", "Márcia", "Sônia",
)
FAMILY = (
    "Silva", "Santos", "Oliveira", "Souza", "Rodrigues", "Ferreira", "Alves", "Pereira", "Lima",
    "Gomes", "Costa", "Ribeiro", "Martins", "Carvalho", "Almeida", "Lopes", "Soares", "Fernandes",
    "Vieira", "Barbosa", "Rocha", "Dias", "Nascimento", "Andrade", "Moreira", "Nunes", "Marques",
    "Machado", "Mendes", "Freitas", "Cardoso", "Ramos", "Gonçalves", "Santana", "Teixeira",
)
UFS = ("SP", "RJ", "MG", "BA", "PR", "RS", "PE", "CE", "SC", "GO", "DF", "ES", "PA", "AM")
CITIES = ("São Paulo", "Rio de Janeiro", "Belo Horizonte", "Salvador", "Curitiba",
          "Porto Alegre", "Recife", "Fortaleza", "Florianópolis", "Goiânia", "Brasília")
NOTES = (
    "Paciente relata sensibilidade cutânea; evitar ácidos acima de 10%.",
    "Prefere atendimento no período da manhã. Histórico de enxaqueca.",
    "Retorno em 30 dias para avaliação do procedimento de preenchimento.",
    "Alergia a dipirona informada na anamnese; confirmar a cada visita.",
)

# the columns COPY writes (every column of patients except the generated search_name and
# those left to their server defaults)
COPY_COLUMNS = (
    "clinic_id", "id", "medical_record_number", "given_names", "family_name", "full_name",
    "birth_date", "gender", "marital_status",
    "cpf_encrypted", "cpf_blind_index", "cns_encrypted", "cns_blind_index",
    "rg_encrypted", "rg_issuing_organ", "passport_number_encrypted",
    "phone_primary", "email", "preferred_contact_method",
    "address_line1", "city", "state", "postal_code",
    "blood_type", "allergies", "patient_notes_encrypted", "internal_notes_encrypted",
    "insurance_provider", "insurance_number",
    "emergency_contact_name", "emergency_contact_phone", "emergency_contact_relationship",
    "emergency_contact_cpf_encrypted",
    "data_consent_status", "no_show_risk_score", "total_no_shows", "total_appointments",
    "is_active", "created_by", "updated_by", "version", "deleted_at",
    "created_at", "updated_at",
)
LOADER_ACTOR = uuid.UUID(int=0x5E5_0000_0002)  # SystemActors.DEMO_SEED


def cpf(n: int) -> str:
    """The n-th valid CPF (same scheme as tests/valid.py; distinct for n < 10**9)."""
    nine = f"{123_000_000 + n * 7919:09d}"[-9:]
    return nine + cpf_check_digits(nine)


def cns(n: int) -> str:
    """The n-th valid provisional CNS (starts with 7)."""
    base = f"7{n:013d}"
    for last in "0123456789":
        if cns_is_valid(base + last):
            return base + last
    return cns(n + 10**12)


def make_keyring() -> KeyRing:
    """Fresh random keys (the scratch database lives only as long as the run)."""
    return KeyRing(keys={"k1": os.urandom(32)}, active_id="k1", blind_index_key=os.urandom(32))


def make_settings(url: str) -> Settings:
    return Settings(
        environment=Environment.TEST,
        database_url=url,
        _env_file=None,  # type: ignore[call-arg]
    )


def libpq_url(url: str) -> str:
    """A URL psycopg.connect accepts (no ``+psycopg`` driver suffix)."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


# ------------------------------------------------------------------ scratch database
def create_scratch_database(admin_url: str) -> str:
    name = f"neonpro_bench_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(libpq_url(admin_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_url(libpq_url(admin_url)).set(database=name).render_as_string(
        hide_password=False
    )


def drop_scratch_database(admin_url: str, url: str) -> None:
    name = make_url(url).database
    if not name or not name.startswith("neonpro_bench_"):
        raise RuntimeError(f"refusing to drop {name!r}: not a benchmark scratch database")
    with psycopg.connect(libpq_url(admin_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ------------------------------------------------------------------------- the data
@dataclass
class Dataset:
    url: str
    keyring: KeyRing
    clinic_ids: list[uuid.UUID]
    clinic_sizes: list[int]
    # the clinic the benchmark works in (the largest one)
    bench_clinic: uuid.UUID
    # n of the CPF/CNS scheme per row of the bench clinic: (patient id, n)
    bench_patients: list[tuple[uuid.UUID, int]] = field(default_factory=list)
    next_n: int = 0  # first unused CPF/CNS number (for creates)
    load_seconds: float = 0.0


def clinic_sizes(patients: int, clinics: int) -> list[int]:
    """Patients per clinic: the first clinic holds a quarter, the others share the rest.

    Real clinic sizes are skewed; and a keyset page 1000 (rows 19,981-20,000) needs
    one clinic with more than 20,000 patients: 50,000 of the default 200,000.
    """
    if clinics == 1:
        return [patients]
    big = patients // 4
    rest = patients - big
    sizes = [big] + [rest // (clinics - 1)] * (clinics - 1)
    sizes[1] += patients - sum(sizes)
    return sizes


def _rows(
    dataset: Dataset, cipher: FieldCipher, blind: BlindIndexer, patients: int, rng: random.Random
) -> Iterator[tuple[object, ...]]:
    clinics, sizes = dataset.clinic_ids, dataset.clinic_sizes
    # clinic of each row, shuffled: rows arrive in created_at order, clinics interleaved
    owner = [i for i, size in enumerate(sizes) for _ in range(size)]
    rng.shuffle(owner)
    start = datetime(2021, 1, 1, tzinfo=UTC)
    span = timedelta(days=5 * 365).total_seconds()
    step = span / patients
    enc = dict(ENCRYPTED)
    for n in range(patients):
        ci = owner[n]
        clinic = clinics[ci]
        pid = uuid.UUID(int=rng.getrandbits(128), version=4)
        created = start + timedelta(seconds=n * step + rng.random() * step * 0.9)
        given = [rng.choice(GIVEN)] + ([rng.choice(GIVEN)] if rng.random() < 0.4 else [])
        family = f"{rng.choice(FAMILY)} {rng.choice(FAMILY)}"
        full = " ".join(given) + " " + family
        deleted = created + timedelta(days=30) if rng.random() < 0.01 else None
        active = deleted is None and rng.random() > 0.03

        def secret(name: str, value: str, pid: uuid.UUID = pid) -> bytes:
            return cipher.encrypt(value, table=NAME, column=enc[name], row_id=pid)

        cpf_n, cns_n = cpf(n), cns(n)
        if clinic == dataset.bench_clinic and deleted is None and active:
            dataset.bench_patients.append((pid, n))
        yield (
            clinic, pid, "P-" + pid.hex[:12].upper(), given, family, full,
            date(1940, 1, 1) + timedelta(days=rng.randrange(80 * 365)),
            rng.choice(("female", "male", "female", "other")),
            rng.choice(("single", "married", "stable_union", "divorced")),
            secret("cpf", cpf_n), blind.index("cpf", cpf_n),
            secret("cns", cns_n), blind.index("cns", cns_n),
            secret("rg", f"{rng.randrange(10**8, 10**9)}"), "SSP",
            secret("passport_number", f"F{rng.randrange(10**6, 10**7)}"),
            f"119{rng.randrange(10**7, 10**8)}", f"paciente{n}@example.com.br",
            rng.choice(("phone", "whatsapp", "email")),
            f"Rua {rng.choice(FAMILY)}, {rng.randrange(1, 3000)}", rng.choice(CITIES),
            rng.choice(UFS), f"{rng.randrange(10**7, 10**8)}",
            rng.choice(("A+", "O+", "B+", "AB-", "O-")),
            ["dipirona"] if rng.random() < 0.1 else [],
            secret("patient_notes", rng.choice(NOTES)),
            secret("internal_notes", rng.choice(NOTES)),
            "Unimed", f"{rng.randrange(10**9, 10**10)}",
            f"{rng.choice(GIVEN)} {rng.choice(FAMILY)}", f"21{rng.randrange(10**8, 10**9)}",
            "cônjuge", secret("emergency_contact_cpf", cpf(n + 50_000_000)),
            rng.choice(("pending", "given", "given", "given")),
            rng.randrange(0, 101), 0, rng.randrange(0, 40),
            active, LOADER_ACTOR, LOADER_ACTOR, 1, deleted,
            created, created,
        )


def load(
    admin_url: str, patients: int, clinics: int, *, seed: int = 20261127,
    log: bool = True,
) -> Dataset:
    """Create, migrate and fill a scratch database; the caller drops it.

    (with :func:`drop_scratch_database`; it is dropped here if the load fails)
    """
    t0 = time.perf_counter()
    url = create_scratch_database(admin_url)
    try:
        dataset = fill(url, patients, clinics, seed=seed, log=log)
    except BaseException:
        drop_scratch_database(admin_url, url)
        raise
    dataset.load_seconds = time.perf_counter() - t0
    return dataset


def fill(
    url: str, patients: int, clinics: int, *, seed: int = 20261127, log: bool = True,
    keyring: KeyRing | None = None,
) -> Dataset:
    """Migrate the empty database ``url`` and fill it: the same ``seed`` and ``keyring``
    give the same rows, byte for byte (bench/citus.py loads plain PostgreSQL and a Citus
    coordinator alike)."""
    t0 = time.perf_counter()
    migrate.upgrade(url, ROLES)
    keyring = keyring or make_keyring()
    cipher, blind = FieldCipher(keyring), BlindIndexer(keyring)
    rng = random.Random(seed)
    clinic_ids = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(clinics)]
    sizes = clinic_sizes(patients, clinics)
    dataset = Dataset(url, keyring, clinic_ids, sizes, clinic_ids[0], next_n=patients)
    with psycopg.connect(url) as conn:
        conn.execute(f"SET ROLE {ROLES.service}")
        # the row-change audit trigger needs an acting user, bound to the transaction:
        # the import acts as the named demo-seed system actor, one audit event per row
        conn.execute(
            "SELECT neonpro_bind_context('', %s, 'system', '', '', '', '')",
            (str(LOADER_ACTOR),),
        )
        with conn.cursor().copy("COPY clinics (id, name, timezone) FROM STDIN") as copy:
            for i, cid in enumerate(clinic_ids):
                copy.write_row((cid, f"Clínica Bench {i + 1:02d}", "America/Sao_Paulo"))
        columns = ", ".join(COPY_COLUMNS)
        with conn.cursor().copy(f"COPY patients ({columns}) FROM STDIN") as copy:
            for i, row in enumerate(_rows(dataset, cipher, blind, patients, rng), 1):
                copy.write_row(row)
                if log and i % 50_000 == 0:
                    print(f"  loaded {i:,} patients ({time.perf_counter() - t0:.0f} s)",
                          flush=True)
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) clinics")
        conn.execute("VACUUM (ANALYZE) patients")
        if conn.execute("SELECT to_regclass('audit_events')").fetchone()[0]:
            conn.execute("VACUUM (ANALYZE) audit_events")
    dataset.load_seconds = time.perf_counter() - t0
    return dataset
