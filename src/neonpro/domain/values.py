"""Value objects for Brazilian identifiers and contact data.

Pure Python: no I/O, no ORM, no pydantic. Each type is a frozen, slotted dataclass
holding its canonical form; ``parse`` normalises user input and the constructor
checks the canonical form, so an instance is always valid.

Personal identifiers (CPF, CNS, phone, e-mail) never show their value in ``repr``
or ``str``: code that needs the value asks for it explicitly (``.digits``,
``.masked()``, ``.e164()``, ``.address``). Every rejection raises
``ValidationFailed(field_name, reason)`` whose reason never contains the input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Self

from neonpro.domain.errors import ValidationFailed
from neonpro.domain.vocabulary import UF_CODES, BloodType

__all__ = [
    "DDD_CODES",
    "Cep",
    "Cnpj",
    "Cns",
    "Cpf",
    "Email",
    "Phone",
    "Uf",
    "cnpj_check_digits",
    "cns_is_valid",
    "cpf_check_digits",
    "parse_blood_type",
]

_DIGITS: Final = frozenset("0123456789")
_ID_SEPARATORS: Final = frozenset(".-/ ")
_PHONE_SEPARATORS: Final = frozenset("-() ")

DDD_CODES: Final[frozenset[str]] = frozenset(
    {
        # SP
        "11", "12", "13", "14", "15", "16", "17", "18", "19",
        # RJ, ES
        "21", "22", "24", "27", "28",
        # MG
        "31", "32", "33", "34", "35", "37", "38",
        # PR, SC
        "41", "42", "43", "44", "45", "46", "47", "48", "49",
        # RS
        "51", "53", "54", "55",
        # DF, GO, TO, MT, MS, AC, RO
        "61", "62", "63", "64", "65", "66", "67", "68", "69",
        # BA, SE
        "71", "73", "74", "75", "77", "79",
        # PE, AL, PB, RN, CE, PI
        "81", "82", "83", "84", "85", "86", "87", "88", "89",
        # PA, AM, RR, AP, MA
        "91", "92", "93", "94", "95", "96", "97", "98", "99",
    }
)  # fmt: skip
"""The Brazilian long-distance area codes (DDD) in use (Anatel)."""

_CPF_WEIGHTS_1: Final = tuple(range(10, 1, -1))
_CPF_WEIGHTS_2: Final = tuple(range(11, 1, -1))
_CNPJ_WEIGHTS_1: Final = (5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2)
_CNPJ_WEIGHTS_2: Final = (6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2)
_CNS_DEFINITIVE: Final = re.compile(r"[12]\d{10}00[01]\d")
_CEP: Final = re.compile(r"(\d{5})-?(\d{3})")

_CPF_LEN: Final = 11
_CNS_LEN: Final = 15
_CNPJ_LEN: Final = 14
_CEP_LEN: Final = 8
_LANDLINE_LEN: Final = 10
_MOBILE_LEN: Final = 11
_EMAIL_MAX: Final = 254
_LOCAL_MAX: Final = 64


# --- helpers ---------------------------------------------------------------------------


def _is_digits(text: str) -> bool:
    """ASCII digits only (``str.isdigit`` also accepts superscripts and other scripts)."""
    return bool(text) and all(c in _DIGITS for c in text)


def _require_text(raw: object, field_name: str) -> str:
    if not isinstance(raw, str):
        raise ValidationFailed(field_name, "must be text")
    return raw.strip()


def _strip_separators(raw: object, field_name: str) -> str:
    """Drop ``.``, ``-``, ``/`` and spaces; anything else but ASCII digits is rejected."""
    text = _require_text(raw, field_name)
    out: list[str] = []
    for c in text:
        if c in _DIGITS:
            out.append(c)
        elif c not in _ID_SEPARATORS:
            raise ValidationFailed(field_name, "contains invalid characters")
    if not out:
        raise ValidationFailed(field_name, "is empty")
    return "".join(out)


def _mod11_digit(digits: str, weights: tuple[int, ...]) -> int:
    remainder = sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11
    return 0 if remainder < 2 else 11 - remainder  # noqa: PLR2004


def cpf_check_digits(nine: str) -> str:
    """The two CPF check digits for the first nine digits."""
    if len(nine) != _CPF_LEN - 2 or not _is_digits(nine):
        raise ValueError("cpf_check_digits needs exactly 9 ASCII digits")
    d1 = _mod11_digit(nine, _CPF_WEIGHTS_1)
    d2 = _mod11_digit(f"{nine}{d1}", _CPF_WEIGHTS_2)
    return f"{d1}{d2}"


def cnpj_check_digits(twelve: str) -> str:
    """The two CNPJ check digits for the first twelve digits."""
    if len(twelve) != _CNPJ_LEN - 2 or not _is_digits(twelve):
        raise ValueError("cnpj_check_digits needs exactly 12 ASCII digits")
    d1 = _mod11_digit(twelve, _CNPJ_WEIGHTS_1)
    d2 = _mod11_digit(f"{twelve}{d1}", _CNPJ_WEIGHTS_2)
    return f"{d1}{d2}"


def _cns_problem(digits: str) -> str | None:
    """Why ``digits`` is not a valid CNS, or None when it is."""
    if len(digits) != _CNS_LEN or not _is_digits(digits):
        return "must have 15 digits"
    if digits[0] not in "12789":
        return "invalid first digit"
    if digits[0] in "12" and _CNS_DEFINITIVE.fullmatch(digits) is None:
        return "invalid format"
    if sum(int(d) * (_CNS_LEN - i) for i, d in enumerate(digits)) % 11 != 0:
        return "invalid check digits"
    return None


def cns_is_valid(digits: str) -> bool:
    """Whether ``digits`` (15 bare digits) is a valid CNS, definitive or provisional."""
    return _cns_problem(digits) is None


# --- identifiers -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, repr=False)
class Cpf:
    """Cadastro de Pessoas Físicas: 11 digits, two mod-11 check digits."""

    digits: str

    def __post_init__(self) -> None:
        d = self.digits
        if not isinstance(d, str) or len(d) != _CPF_LEN or not _is_digits(d):
            raise ValidationFailed("cpf", "must have 11 digits")
        if len(set(d)) == 1:
            raise ValidationFailed("cpf", "all digits are equal")
        if cpf_check_digits(d[:9]) != d[9:]:
            raise ValidationFailed("cpf", "invalid check digits")

    @classmethod
    def parse(cls, raw: str) -> Self:
        """Accept ``111.444.777-35`` or ``11144477735`` (``.``, ``-``, ``/``, spaces dropped)."""
        digits = _strip_separators(raw, "cpf")
        if len(digits) != _CPF_LEN:
            raise ValidationFailed("cpf", "must have 11 digits")
        return cls(digits)

    def masked(self) -> str:
        d = self.digits
        return f"{d[:3]}.{d[3:6]}.{d[6:9]}-{d[9:]}"

    def __repr__(self) -> str:
        return "Cpf(***.***.***-**)"

    def __str__(self) -> str:
        return "***.***.***-**"


@dataclass(frozen=True, slots=True, repr=False)
class Cns:
    """Cartão Nacional de Saúde: 15 digits; definitive (1, 2) or provisional (7, 8, 9)."""

    digits: str

    def __post_init__(self) -> None:
        d = self.digits
        problem = _cns_problem(d) if isinstance(d, str) else "must have 15 digits"
        if problem is not None:
            raise ValidationFailed("cns", problem)

    @classmethod
    def parse(cls, raw: str) -> Self:
        """Accept 15 digits, optionally grouped (``144 0826 2726 0004``)."""
        digits = _strip_separators(raw, "cns")
        if len(digits) != _CNS_LEN:
            raise ValidationFailed("cns", "must have 15 digits")
        return cls(digits)

    @property
    def is_definitive(self) -> bool:
        return self.digits[0] in "12"

    def masked(self) -> str:
        """The usual grouping ``ddd dddd dddd dddd``."""
        d = self.digits
        return f"{d[:3]} {d[3:7]} {d[7:11]} {d[11:]}"

    def __repr__(self) -> str:
        return "Cns(*** **** **** ****)"

    def __str__(self) -> str:
        return "*** **** **** ****"


@dataclass(frozen=True, slots=True, repr=False)
class Cnpj:
    """Cadastro Nacional da Pessoa Jurídica (numeric format): 14 digits, two check digits.

    A company identifier, not personal data, so ``str`` shows it masked-for-reading.
    """

    digits: str

    def __post_init__(self) -> None:
        d = self.digits
        if not isinstance(d, str) or len(d) != _CNPJ_LEN or not _is_digits(d):
            raise ValidationFailed("cnpj", "must have 14 digits")
        if len(set(d)) == 1:
            raise ValidationFailed("cnpj", "all digits are equal")
        if cnpj_check_digits(d[:12]) != d[12:]:
            raise ValidationFailed("cnpj", "invalid check digits")

    @classmethod
    def parse(cls, raw: str) -> Self:
        """Accept ``12.345.678/0001-95`` or 14 bare digits."""
        digits = _strip_separators(raw, "cnpj")
        if len(digits) != _CNPJ_LEN:
            raise ValidationFailed("cnpj", "must have 14 digits")
        return cls(digits)

    def masked(self) -> str:
        d = self.digits
        return f"{d[:2]}.{d[2:5]}.{d[5:8]}/{d[8:12]}-{d[12:]}"

    def __repr__(self) -> str:
        return f"Cnpj({self.masked()})"

    def __str__(self) -> str:
        return self.masked()


# --- address ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, repr=False)
class Cep:
    """Código de Endereçamento Postal: 8 digits."""

    digits: str

    def __post_init__(self) -> None:
        d = self.digits
        if not isinstance(d, str) or len(d) != _CEP_LEN or not _is_digits(d):
            raise ValidationFailed("cep", "must have 8 digits")

    @classmethod
    def parse(cls, raw: str) -> Self:
        """Accept ``01310-100`` or ``01310100``."""
        text = _require_text(raw, "cep")
        match = _CEP.fullmatch(text)
        if match is None or not text.isascii():
            raise ValidationFailed("cep", "must have 8 digits")
        return cls(match.group(1) + match.group(2))

    def masked(self) -> str:
        return f"{self.digits[:5]}-{self.digits[5:]}"

    def __repr__(self) -> str:
        return f"Cep({self.masked()})"

    def __str__(self) -> str:
        return self.masked()


@dataclass(frozen=True, slots=True, repr=False)
class Uf:
    """Unidade Federativa: one of the 26 states or the Federal District."""

    code: str

    def __post_init__(self) -> None:
        if not isinstance(self.code, str) or self.code not in UF_CODES:
            raise ValidationFailed("uf", "unknown state code")

    @classmethod
    def parse(cls, raw: str) -> Self:
        """Case-insensitive: ``sp``, ``Sp`` and ``SP`` give ``Uf("SP")``."""
        return cls(_require_text(raw, "uf").upper())

    def __repr__(self) -> str:
        return f"Uf({self.code})"

    def __str__(self) -> str:
        return self.code


# --- contact ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, repr=False)
class Phone:
    """A Brazilian phone number, stored as 10 (landline) or 11 (mobile) national digits."""

    digits: str

    def __post_init__(self) -> None:
        d = self.digits
        if (
            not isinstance(d, str)
            or len(d) not in (_LANDLINE_LEN, _MOBILE_LEN)
            or not _is_digits(d)
        ):
            raise ValidationFailed("phone", "must have 10 or 11 digits")
        if d[:2] not in DDD_CODES:
            raise ValidationFailed("phone", "invalid area code")
        if len(d) == _MOBILE_LEN and d[2] != "9":
            raise ValidationFailed("phone", "11-digit numbers must be mobiles starting with 9")
        if len(d) == _LANDLINE_LEN and d[2] not in "2345":
            raise ValidationFailed("phone", "landline numbers must start with 2 to 5")

    @classmethod
    def parse(cls, raw: str) -> Self:
        """Accept ``+55 (11) 98765-4321``, ``55 11 98765 4321``, ``(11) 3456-7890``, ..."""
        text = _require_text(raw, "phone")
        international = text.startswith("+")
        if international:
            text = text[1:]
        out: list[str] = []
        for c in text:
            if c in _DIGITS:
                out.append(c)
            elif c not in _PHONE_SEPARATORS:
                raise ValidationFailed("phone", "contains invalid characters")
        digits = "".join(out)
        with_country = len(digits) in (_LANDLINE_LEN + 2, _MOBILE_LEN + 2)
        if international:
            if not digits.startswith("55"):
                raise ValidationFailed("phone", "must be a Brazilian number")
            if not with_country:
                raise ValidationFailed("phone", "must have 10 or 11 digits")
            digits = digits[2:]
        elif with_country and digits.startswith("55"):
            digits = digits[2:]
        return cls(digits)

    @property
    def area_code(self) -> str:
        return self.digits[:2]

    @property
    def is_mobile(self) -> bool:
        return len(self.digits) == _MOBILE_LEN

    def e164(self) -> str:
        return f"+55{self.digits}"

    def __repr__(self) -> str:
        return f"Phone({self})"

    def __str__(self) -> str:
        hidden = "*****-****" if self.is_mobile else "****-****"
        return f"+55 {self.area_code} {hidden}"


@dataclass(frozen=True, slots=True, repr=False)
class Email:
    """An e-mail address, pragmatically checked; the domain is stored lower-cased."""

    address: str

    def __post_init__(self) -> None:
        problem = _email_problem(self.address) if isinstance(self.address, str) else "is empty"
        if problem is not None:
            raise ValidationFailed("email", problem)
        domain = self.address.split("@")[1]
        if domain != domain.lower():
            raise ValidationFailed("email", "domain must be lower case")

    @classmethod
    def parse(cls, raw: str) -> Self:
        text = _require_text(raw, "email")
        problem = _email_problem(text)
        if problem is not None:
            raise ValidationFailed("email", problem)
        local, domain = text.split("@")
        return cls(f"{local}@{domain.lower()}")

    @property
    def local_part(self) -> str:
        return self.address.split("@")[0]

    @property
    def domain(self) -> str:
        return self.address.split("@")[1]

    def normalized(self) -> str:
        """Fully lower-cased, for look-ups and uniqueness checks."""
        return self.address.lower()

    def __repr__(self) -> str:
        return f"Email({self})"

    def __str__(self) -> str:
        return f"***@{self.domain}"


def _email_problem(text: str) -> str | None:
    local, _, domain = text.partition("@")
    labels = domain.split(".")
    checks = (
        (not text, "is empty"),
        (len(text) > _EMAIL_MAX, "too long"),
        (
            any(c.isspace() or not c.isprintable() for c in text),
            "must not contain spaces or control characters",
        ),
        (text.count("@") != 1, "must contain exactly one @"),
        (not local, "missing local part"),
        (len(local) > _LOCAL_MAX, "local part too long"),
        (len(labels) < 2 or not all(labels), "invalid domain"),  # noqa: PLR2004
    )
    return next((reason for failed, reason in checks if failed), None)


# --- clinical --------------------------------------------------------------------------


def parse_blood_type(raw: str) -> BloodType:
    """``"a+"``, ``"AB-"``, ``"O +"`` -> the ``BloodType`` member."""
    text = _require_text(raw, "blood_type")
    compact = "".join(text.split()).upper()
    try:
        return BloodType(compact)
    except ValueError:
        raise ValidationFailed("blood_type", "unknown blood type") from None
