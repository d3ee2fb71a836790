"""Redaction of personal data in log events (LGPD): applied to every line before rendering.

Two mechanisms, both cheap in the common case:

* **Keys that are personal by name** (``full_name``, ``cpf``, ``email``, ``phone*``,
  ``address*``, ``*_notes``, ``password*``, ...): their values are replaced by
  ``[REDACTED]`` whatever they hold, recursively in dicts, lists and tuples.
* **Free text** (the ``event`` string, every other string value, rendered exception
  text): CPF and CNS numbers are replaced by ``[CPF]`` / ``[CNS]`` only when they are
  standalone (not glued to other letters or digits) and their check digits are valid,
  so order numbers, timestamps and ids survive; e-mail addresses become ``[EMAIL]``;
  Brazilian phone numbers that ``Phone.parse`` accepts become ``[PHONE]``. SQLAlchemy's
  ``[parameters: ...]``, PostgreSQL's ``DETAIL: Key (...)=(...)`` / ``Failing row
  contains (...)`` values and passwords in URLs are removed as well.

There is no general name detector: names are caught by key only. Text without a pair
of consecutive digits or an ``@`` (most events) skips the patterns entirely.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
import uuid
from collections.abc import Mapping, MutableMapping
from decimal import Decimal
from functools import lru_cache
from typing import Any, Final

from pydantic import BaseModel

from neonpro.domain.errors import ValidationFailed
from neonpro.domain.values import Phone, cns_is_valid, cpf_check_digits

__all__ = [
    "CNS_MARK",
    "CPF_MARK",
    "EMAIL_MARK",
    "PERSONAL_KEYS",
    "PHONE_MARK",
    "REDACTED",
    "is_personal_key",
    "redact_event",
    "redact_text",
    "redact_value",
]

REDACTED: Final = "[REDACTED]"
CPF_MARK: Final = "[CPF]"
CNS_MARK: Final = "[CNS]"
EMAIL_MARK: Final = "[EMAIL]"
PHONE_MARK: Final = "[PHONE]"

PERSONAL_KEYS: Final[frozenset[str]] = frozenset(
    {
        "full_name", "name", "patient_name", "given_names", "family_name",
        "preferred_name", "display_name", "email", "cpf", "cns", "rg",
        "passport_number", "city", "birth_date", "notes", "chief_complaint",
        "dpo_name", "dpo_email", "token", "authorization",
    }
)  # fmt: skip
"""Keys whose values are personal (or secret) whatever they look like."""

_PERSONAL_PREFIXES: Final = ("phone", "address", "emergency_contact_", "password")
_PERSONAL_SUFFIXES: Final = ("_notes", "_email", "_phone", "_token")

# Keys structlog itself fills in: never personal, not worth scanning.
_SKIPPED_KEYS: Final = frozenset(
    {"timestamp", "level", "log_level", "logger", "_record", "_from_structlog"}
)

_MAX_DEPTH: Final = 12
_BIG_INT: Final = 10**9  # ints below this cannot be a CPF, CNS or phone number

# --- patterns --------------------------------------------------------------------------

# Cheap pre-check: every pattern below needs two consecutive ASCII digits or an "@".
_TRIGGER: Final = re.compile(r"[0-9]{2}|@")
_NON_DIGITS: Final = re.compile(r"[^0-9]")
# Ids are the most common values with digits: a lone UUID skips the patterns.
_UUID: Final = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")

# CNS: 15 digits, bare or grouped 3-4-4-4; CPF: 11 digits, bare or 111.444.777-35.
# Standalone: neither glued to a letter nor to a digit (hex ids, longer numbers).
_ID_NUMBER: Final = re.compile(
    r"(?<![0-9A-Za-z])"
    r"(?:(?P<cns>[0-9]{3}[ .]?[0-9]{4}[ .]?[0-9]{4}[ .]?[0-9]{4})"
    r"|(?P<cpf>[0-9]{3}[. ]?[0-9]{3}[. ]?[0-9]{3}[-. ]?[0-9]{2}))"
    r"(?![0-9A-Za-z])"
)
# Brazilian phones: optional +55, DDD with or without parentheses, 8 or 9 digits.
_PHONE: Final = re.compile(
    r"(?<![0-9A-Za-z+])"
    r"(?:\+?55[ .-]?)?"
    r"(?:\([0-9]{2}\)|[0-9]{2})[ .-]?"
    r"(?:9[ .-]?[0-9]{4}|[0-9]{4})[ .-]?[0-9]{4}"
    r"(?![0-9A-Za-z])"
)
_EMAIL: Final = re.compile(
    # not after a character an address can hold, except a quote: Python quotes what it
    # repr()s ("KeyError('ana@example.com')"), and the leftmost match keeps "o'brien@" whole
    r"(?<![\w.!#$%&*+^~/-])[\w!#$%&*+^~-][\w.!#$%&'*+^~-]*@[\w-]+(?:\.[\w-]+)+"
)
_URL_PASSWORD: Final = re.compile(r"(://[^:/\s@]+:)[^@\s/]+@")

# Database error text.
_SQL_PARAMETERS: Final = re.compile(r"\[parameters:[^\n]*")
_PG_KEY_VALUES: Final = re.compile(r"(Key \(.*?\)=\()[^\n]*(\))")
_PG_FAILING_ROW: Final = re.compile(r"(Failing row contains \()[^\n]*(\))")
_PG_INVALID_INPUT: Final = re.compile(r"(invalid input (?:syntax|value) for [^:\n]*: )\"[^\n]*\"")

_CPF_LEN: Final = 11
_CNS_LEN: Final = 15
_BARE_PHONE_LENS_SKIPPED: Final = (10, 12)  # bare landline-length runs: epoch seconds, ids


def _is_cpf(digits: str) -> bool:
    return (
        len(digits) == _CPF_LEN
        and len(set(digits)) > 1
        and cpf_check_digits(digits[:9]) == digits[9:]
    )


def _id_number(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = _NON_DIGITS.sub("", text)
    if match.group("cns") is not None:
        return CNS_MARK if len(digits) == _CNS_LEN and cns_is_valid(digits) else text
    return CPF_MARK if _is_cpf(digits) else text


def _phone(match: re.Match[str]) -> str:
    text = match.group(0)
    if text.isdigit() and len(text) in _BARE_PHONE_LENS_SKIPPED:
        return text
    try:
        Phone.parse(text.replace(".", " "))
    except ValidationFailed:
        return text
    return PHONE_MARK


def _database_text(text: str) -> str:
    if "[parameters:" in text:
        text = _SQL_PARAMETERS.sub(f"[parameters: {REDACTED}]", text)
    if "Key (" in text:
        text = _PG_KEY_VALUES.sub(rf"\g<1>{REDACTED}\g<2>", text)
    if "Failing row contains" in text:
        text = _PG_FAILING_ROW.sub(rf"\g<1>{REDACTED}\g<2>", text)
    if "invalid input" in text:
        text = _PG_INVALID_INPUT.sub(rf'\g<1>"{REDACTED}"', text)
    return text


def redact_text(text: str) -> str:
    """``text`` with CPF, CNS, e-mail, phone numbers and database parameter values removed."""
    text = _database_text(text)
    if _TRIGGER.search(text) is None or _UUID.fullmatch(text) is not None:
        return text
    if "@" in text:
        text = _URL_PASSWORD.sub(rf"\g<1>{REDACTED}@", text)
        text = _EMAIL.sub(EMAIL_MARK, text)
    text = _ID_NUMBER.sub(_id_number, text)
    return _PHONE.sub(_phone, text)


@lru_cache(maxsize=4096)
def is_personal_key(key: str) -> bool:
    """Whether values under ``key`` are personal by name (case-insensitive)."""
    k = key.lower()
    return k in PERSONAL_KEYS or k.startswith(_PERSONAL_PREFIXES) or k.endswith(_PERSONAL_SUFFIXES)


_SAFE_TYPES: Final = (
    bool,
    float,
    type(None),
    uuid.UUID,
    dt.date,
    dt.time,
    dt.timedelta,
    Decimal,
    enum.Enum,
)


def _redact_items(mapping: Mapping[Any, Any], depth: int) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    for key, value in mapping.items():
        name = key if isinstance(key, str) else str(key)
        safe_key = redact_text(key) if isinstance(key, str) else key
        if is_personal_key(name) and value is not None and value != "":
            out[safe_key] = REDACTED
        else:
            out[safe_key] = redact_value(value, depth + 1)
    return out


def redact_value(value: Any, depth: int = 0) -> Any:  # noqa: PLR0911
    """A copy of ``value`` safe to log: personal keys blanked, text patterns replaced.

    Objects that are not plain data are logged as their redacted ``repr``.
    """
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, _SAFE_TYPES):
        return value
    if isinstance(value, int):
        if abs(value) < _BIG_INT:
            return value
        text = str(value)
        redacted = redact_text(text)
        return value if redacted == text else redacted
    if depth > _MAX_DEPTH:
        return REDACTED
    if isinstance(value, Mapping):
        return _redact_items(value, depth)
    if isinstance(value, list | tuple | set | frozenset):
        items = [redact_value(v, depth + 1) for v in value]
        return tuple(items) if isinstance(value, tuple) else items
    if isinstance(value, BaseModel):
        return _redact_items(value.model_dump(mode="json"), depth)
    return redact_text(repr(value))


def redact_event(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> Any:
    """structlog processor: redact ``event_dict`` in place (after ``format_exc_info``)."""
    for key, value in list(event_dict.items()):
        if key in _SKIPPED_KEYS or value is None:
            continue
        if is_personal_key(key) and value != "":
            event_dict[key] = REDACTED
        else:
            event_dict[key] = redact_value(value)
    return event_dict
