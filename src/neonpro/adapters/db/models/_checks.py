"""Builders for CHECK constraint SQL, generated from the domain vocabularies.

Every CHECK gets a short ``name``; the metadata naming convention turns it into
``ck_<table>_<name>``. A CHECK is satisfied by NULL, so the same helpers serve
nullable columns without an extra ``IS NULL`` clause.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import CheckConstraint

from neonpro.domain.vocabulary import UF_CODES

if TYPE_CHECKING:
    from collections.abc import Iterable
    from enum import StrEnum

PHONE_BR = r"^[1-9][1-9][0-9]{8,9}$"
"""Brazilian phone, digits only: area code 11-99, then 8 (landline) or 9 (mobile) digits."""
CEP = r"^[0-9]{8}$"
CNPJ = r"^[0-9]{14}$"
CNES = r"^[0-9]{7}$"
TUSS = r"^[0-9]{8}$"
ANS_OPERATOR = r"^[0-9]{6}$"
HEX_COLOR = r"^#[0-9A-Fa-f]{6}$"
SHA256_HEX = r"^[0-9a-f]{64}$"


def sql_literal(value: str) -> str:
    """A SQL string literal (single quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


def in_values(column_name: str, values: Iterable[str]) -> str:
    """``column IN ('a', 'b', ...)`` in the given order."""
    listed = ", ".join(sql_literal(str(v)) for v in values)
    return f"{column_name} IN ({listed})"


def in_check(column_name: str, enum_cls: type[StrEnum]) -> str:
    """``column IN (...)`` over every value of a vocabulary."""
    return in_values(column_name, (member.value for member in enum_cls))


def array_subset_check(column_name: str, enum_cls: type[StrEnum]) -> str:
    """Every element of a ``text[]`` column belongs to the vocabulary."""
    listed = ", ".join(sql_literal(member.value) for member in enum_cls)
    return f"{column_name} <@ ARRAY[{listed}]::text[]"


def regex_check(column_name: str, pattern: str) -> str:
    """``column ~ 'pattern'`` (POSIX regular expression, anchored by the caller)."""
    return f"{column_name} ~ {sql_literal(pattern)}"


def ck_in(column_name: str, enum_cls: type[StrEnum]) -> CheckConstraint:
    """CHECK named ``<column>_valid``: the column holds a value of the vocabulary."""
    return CheckConstraint(in_check(column_name, enum_cls), name=f"{column_name}_valid")


def ck_array_in(column_name: str, enum_cls: type[StrEnum]) -> CheckConstraint:
    """CHECK named ``<column>_valid``: every array element is a value of the vocabulary."""
    return CheckConstraint(array_subset_check(column_name, enum_cls), name=f"{column_name}_valid")


def ck_uf(column_name: str) -> CheckConstraint:
    """CHECK named ``<column>_uf``: one of the 27 state codes."""
    return CheckConstraint(in_values(column_name, UF_CODES), name=f"{column_name}_uf")


def ck_regex(column_name: str, pattern: str) -> CheckConstraint:
    """CHECK named ``<column>_format``: the column matches ``pattern``."""
    return CheckConstraint(regex_check(column_name, pattern), name=f"{column_name}_format")


def ck_range(column_name: str, low: int, high: int) -> CheckConstraint:
    """CHECK named ``<column>_range``: ``low <= column <= high``."""
    return CheckConstraint(f"{column_name} BETWEEN {low} AND {high}", name=f"{column_name}_range")


def ck_non_negative(column_name: str) -> CheckConstraint:
    """CHECK named ``<column>_non_negative``: ``column >= 0``."""
    return CheckConstraint(f"{column_name} >= 0", name=f"{column_name}_non_negative")


def ck_positive(column_name: str) -> CheckConstraint:
    """CHECK named ``<column>_positive``: ``column > 0``."""
    return CheckConstraint(f"{column_name} > 0", name=f"{column_name}_positive")


def ck_version() -> CheckConstraint:
    """CHECK named ``version_positive``: optimistic-lock counters start at 1."""
    return CheckConstraint("version >= 1", name="version_positive")
