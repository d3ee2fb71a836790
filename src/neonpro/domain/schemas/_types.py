"""Annotated field types that normalise and validate with the domain value objects.

A failed check raises ``ValueError(reason)`` so pydantic reports the field; models set
``hide_input_in_errors`` so the rejected value never appears in the error text.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Annotated, Any, get_args, get_origin

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from neonpro.domain import values
from neonpro.domain.errors import ValidationFailed


def _checked(parse: Callable[[str], Any], render: Callable[[Any], str]) -> AfterValidator:
    def check(raw: str) -> str:
        try:
            return render(parse(raw))
        except ValidationFailed as exc:
            raise ValueError(exc.reason) from None

    return AfterValidator(check)


def _digits(value: Any) -> str:
    return str(value.digits)


CpfStr = Annotated[str, _checked(values.Cpf.parse, _digits)]
CnsStr = Annotated[str, _checked(values.Cns.parse, _digits)]
CnpjStr = Annotated[str, _checked(values.Cnpj.parse, _digits)]
CepStr = Annotated[str, _checked(values.Cep.parse, _digits)]
UfStr = Annotated[str, _checked(values.Uf.parse, lambda v: str(v.code))]
PhoneStr = Annotated[str, _checked(values.Phone.parse, _digits)]
EmailStr = Annotated[str, _checked(values.Email.parse, lambda v: str(v.address))]
BloodTypeStr = Annotated[str, _checked(values.parse_blood_type, lambda v: str(v.value))]
Name = Annotated[str, Field(min_length=1, max_length=200)]
ShortText = Annotated[str, Field(max_length=200)]
LongText = Annotated[str, Field(max_length=20_000)]
TextList = Annotated[list[Annotated[str, Field(min_length=1, max_length=200)]],
                     Field(max_length=100)]
Tuss = Annotated[str, Field(pattern=r"^[0-9]{8}$")]


MAX_DEPTH = 16  # nesting of lists and objects in any field (consent evidence, say)


def _no_nul(value: Any, depth: int = 0) -> Any:
    """No NUL character anywhere (PostgreSQL text cannot hold one), and no nesting deeper
    than :data:`MAX_DEPTH` (500 levels of evidence once ended in a 500)."""
    if depth > MAX_DEPTH:
        raise ValueError(f"must not nest more than {MAX_DEPTH} levels deep")
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    if isinstance(value, list | tuple):
        for item in value:
            _no_nul(item, depth + 1)
    if isinstance(value, dict):
        for key, item in value.items():
            _no_nul(key, depth + 1)
            _no_nul(item, depth + 1)
    return value


# a wall-clock time as the API writes it ("08:00:00"): JSON Schema's "time" format is
# RFC 3339 full-time, which needs an offset, so documenting it so made valid answers fail
# schema validation (the stateful schemathesis run found it)
LocalTime = Annotated[time, WithJsonSchema(
    {"type": "string", "pattern": r"^\d{2}:\d{2}(:\d{2}(\.\d+)?)?$"})]

# Instants and days the API accepts: 1900 to 2199. Python's datetime ends at year 9999 and
# PostgreSQL's date at 5874897, but moving "9999-12-31T23:59:59-03:00" to UTC, or a day
# before year 1 by a window, overflows (a 500 in the hostile-input corpus): a bound no
# clinic's record needs is a 422 instead.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2199, 12, 31, 23, 59, 59, tzinfo=UTC)
_BOUNDS = "must be between 1900-01-01 and 2199-12-31"


def _bounded_instant(value: datetime) -> datetime:
    try:
        inside = EARLIEST <= value.astimezone(UTC) <= LATEST
    except (OverflowError, ValueError):
        inside = False
    if not inside:
        raise ValueError(_BOUNDS)
    return value


def _bounded_day(value: date) -> date:
    if not EARLIEST.date() <= value <= LATEST.date():
        raise ValueError(_BOUNDS)
    return value


Instant = Annotated[AwareDatetime, AfterValidator(_bounded_instant)]
Day = Annotated[date, AfterValidator(_bounded_day)]

INT32_MAX = 2_147_483_647
# strict: JSON true is not version 1, nor "3" version 3 (the hostile-input corpus sent both)
Version = Annotated[int, Field(ge=1, le=INT32_MAX, strict=True,
                               description="optimistic-locking version")]


class Schema(BaseModel):
    """Base of every input schema: strict about unknown fields, silent about inputs,
    and no NUL characters anywhere (PostgreSQL text cannot hold them)."""

    model_config = ConfigDict(
        extra="forbid", hide_input_in_errors=True, str_strip_whitespace=True, frozen=True
    )

    @field_validator("*", mode="after")
    @classmethod
    def _refuse_nul(cls, value: Any) -> Any:
        return _no_nul(value)

    @field_validator("*", mode="before")
    @classmethod
    def _refuse_bool_as_number(cls, value: Any, info: ValidationInfo) -> Any:
        # lax mode reads JSON true as 1: a count or a duration must be a number
        if type(value) is bool and info.field_name is not None:
            kinds = _leaf_types(cls.model_fields[info.field_name].annotation)
            if bool not in kinds and kinds & {int, float, Decimal}:
                raise ValueError("must be a number, not true or false")
        return value


def _leaf_types(annotation: Any) -> set[Any]:
    args = get_args(annotation)
    if not args:
        return {annotation}
    if get_origin(annotation) is Annotated:
        return _leaf_types(args[0])
    return set().union(*(_leaf_types(a) for a in args))


class ReadSchema(BaseModel):
    """Base of read schemas: built from trusted rows, fields listed explicitly."""

    model_config = ConfigDict(frozen=True, hide_input_in_errors=True)
Url = Annotated[str, Field(max_length=2000, pattern=r"^https?://\S+$")]
DocumentNumber = Annotated[str, Field(min_length=1, max_length=30)]
CountryCode = Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
AnsCode = Annotated[str, Field(pattern=r"^[0-9]{6}$")]
