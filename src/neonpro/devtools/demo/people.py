"""People and identifiers: Brazilian names, CPF, CNS, CNPJ, phone numbers, e-mail local parts.

Every function takes the run's ``random.Random`` and draws from it in a fixed order: the
same seed gives the same """

from __future__ import annotations

import hashlib
import random
import re
from typing import Final

from neonpro.domain.text import fold_for_search
from neonpro.domain.values import cnpj_check_digits, cns_is_valid, cpf_check_digits
from neonpro.domain.vocabulary import Gender

FEMALE: Final = (
    "Ana", "Maria", "Juliana", "Fernanda", "Camila", "Beatriz", "Larissa", "Patrícia",
    "Aline", "Mariana", "Gabriela", "Letícia", "Vanessa", "Renata", "Carolina", "Amanda",
    "Bruna", "Natália", "Luciana", "Adriana", "Cláudia", "Simone", "Tatiane", "Débora",
    "Isabela", "Rafaela", "Sandra", "Helena", "Lívia", "Yasmin", "Luana", "Priscila",
)  # fmt: skip
MALE: Final = (
    "João", "José", "Pedro", "Lucas", "Gabriel", "Rafael", "Felipe", "Bruno", "Gustavo",
    "Rodrigo", "Marcelo", "Thiago", "André", "Carlos", "Eduardo", "Fernando", "Ricardo",
    "Paulo", "Daniel", "Leonardo", "Mateus", "Vinícius", "Diego", "Antônio", "Francisco",
)  # fmt: skip
FAMILY: Final = (
    "Silva", "Santos", "Oliveira", "Souza", "Rodrigues", "Ferreira", "Alves", "Pereira",
    "Lima", "Gomes", "Costa", "Ribeiro", "Martins", "Carvalho", "Almeida", "Lopes", "Soares",
    "Fernandes", "Vieira", "Barbosa", "Rocha", "Dias", "Nascimento", "Andrade", "Moreira",
    "Nunes", "Marques", "Machado", "Mendes", "Freitas", "Cardoso", "Ramos", "Gonçalves",
    "Santana", "Teixeira", "Araújo", "Correia", "Cavalcanti", "Monteiro", "Moura",
)  # fmt: skip
PARTICLES: Final = ("da", "de", "dos")


def _cnpj_root(seed: int) -> str:
    digest = hashlib.sha256(f"neonpro-demo:{seed}".encode()).hexdigest()
    return f"{int(digest, 16) % 10**8:08d}"


def demo_cnpj(seed: int, branch: int) -> str:
    """The CNPJ of a demo clinic: one company root per seed, one branch per clinic."""
    twelve = f"{_cnpj_root(seed)}{branch:04d}"
    return twelve + cnpj_check_digits(twelve)


_DEMO_NAME: Final = re.compile(r" \(demo (\d+)\)$")


def is_demo_clinic(name: str, cnpj: str | None) -> bool:
    """Whether a clinic is one the demo created: its name ends in ``(demo SEED)`` and its
    CNPJ is of that seed's company (a real clinic's name alone is not enough)."""
    named = _DEMO_NAME.search(name)
    return bool(named and cnpj and cnpj[:8] == _cnpj_root(int(named.group(1))))


def cpf(rng: random.Random, used: set[str]) -> str:
    while True:
        nine = f"{rng.randrange(1, 10**9):09d}"
        number = nine + cpf_check_digits(nine)
        if len(set(number)) > 1 and number not in used:
            used.add(number)
            return number


def cns(rng: random.Random, used: set[str]) -> str:
    """A provisional CNS (first digit 7, 8 or 9): the weighted sum is a multiple of 11."""
    while True:
        body = rng.choice("789") + f"{rng.randrange(10**13):013d}"
        last = -sum(int(d) * (15 - i) for i, d in enumerate(body)) % 11
        number = f"{body}{last}"
        if last < 10 and cns_is_valid(number) and number not in used:  # noqa: PLR2004
            used.add(number)
            return number


def mobile(rng: random.Random, ddd: str) -> str:
    return f"{ddd}9{rng.randrange(6, 10)}{rng.randrange(10**7):07d}"


def landline(rng: random.Random, ddd: str) -> str:
    return f"{ddd}{rng.randrange(2, 6)}{rng.randrange(10**7):07d}"


def person(rng: random.Random) -> tuple[Gender, list[str], str, str]:
    """(gender, given names, family name, full name) from the fixed lists."""
    gender = Gender.FEMALE if rng.random() < 0.68 else Gender.MALE  # noqa: PLR2004
    pool = FEMALE if gender is Gender.FEMALE else MALE
    given = [rng.choice(pool)]
    if rng.random() < 0.3:  # noqa: PLR2004
        given.append(rng.choice(pool))
    first_family, family = rng.choice(FAMILY), rng.choice(FAMILY)
    middle = f"{rng.choice(PARTICLES)} " if rng.random() < 0.25 else ""  # noqa: PLR2004
    full = f"{' '.join(given)} {middle}{first_family} {family}".replace(
        f"{first_family} {first_family}", first_family)
    return gender, given, family, full


def email_local(given: str, family: str) -> str:
    return f"{fold_for_search(given)}.{fold_for_search(family)}".replace(" ", "")
