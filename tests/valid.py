"""Deterministic valid Brazilian identifiers for tests (the n-th CPF, CNS)."""

from __future__ import annotations

from neonpro.domain.values import cns_is_valid, cpf_check_digits


def cpf(n: int) -> str:
    """The n-th valid CPF (distinct for distinct n < 10**8)."""
    nine = f"{123_000_000 + n * 7919:09d}"[-9:]
    return nine + cpf_check_digits(nine)


def cns(n: int) -> str:
    """The n-th valid provisional CNS (starts with 7)."""
    base = f"7{n:013d}"
    for last in "0123456789":
        if cns_is_valid(base + last):
            return base + last
    return cns(n + 10_000)
