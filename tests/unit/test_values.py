"""Value objects: Brazilian identifiers, contact data, blood types.

The check-digit rules are re-implemented here independently (a different but
equivalent formula) so the tests do not merely compare the code with itself.
"""

from __future__ import annotations

import dataclasses
import re

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from neonpro.domain.errors import ValidationFailed
from neonpro.domain.values import (
    DDD_CODES,
    Cep,
    Cnpj,
    Cns,
    Cpf,
    Email,
    Phone,
    Uf,
    cnpj_check_digits,
    cns_is_valid,
    cpf_check_digits,
    parse_blood_type,
)
from neonpro.domain.vocabulary import UF_CODES, BloodType

# --- independent reference implementations ------------------------------------------


def _ref_dv(digits: str, weights: list[int]) -> str:
    # (10 * S mod 11) mod 10 is 0 for remainders 0 and 1, else 11 - remainder.
    s = sum(int(d) * w for d, w in zip(digits, weights, strict=True))
    return str((s * 10 % 11) % 10)


def ref_cpf_valid(d: str) -> bool:
    if not re.fullmatch(r"[0-9]{11}", d) or d == d[0] * 11:
        return False
    d1 = _ref_dv(d[:9], list(range(10, 1, -1)))
    d2 = _ref_dv(d[:9] + d1, list(range(11, 1, -1)))
    return d[9:] == d1 + d2


CNPJ_W1 = [5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]
CNPJ_W2 = [6, *CNPJ_W1]


def ref_cnpj_valid(d: str) -> bool:
    if not re.fullmatch(r"[0-9]{14}", d) or d == d[0] * 14:
        return False
    d1 = _ref_dv(d[:12], CNPJ_W1)
    d2 = _ref_dv(d[:12] + d1, CNPJ_W2)
    return d[12:] == d1 + d2


def ref_cns_valid(d: str) -> bool:
    if not re.fullmatch(r"[12789][0-9]{14}", d):
        return False
    if d[0] in "12" and not re.fullmatch(r"[12][0-9]{10}00[01][0-9]", d):
        return False
    return sum(int(c) * w for c, w in zip(d, range(15, 0, -1), strict=True)) % 11 == 0


def corruptions(d: str) -> list[tuple[int, str]]:
    """Every single-digit change of ``d``: (position, corrupted number)."""
    return [(i, d[:i] + c + d[i + 1 :]) for i in range(len(d)) for c in "0123456789" if c != d[i]]


def rejected(parse: object, raw: str, field: str) -> ValidationFailed:
    assert callable(parse)
    with pytest.raises(ValidationFailed) as info:
        parse(raw)
    assert info.value.field == field
    return info.value


# --- strategies -----------------------------------------------------------------------

digit_strings = st.text(alphabet="0123456789", min_size=1, max_size=20)


@st.composite
def valid_cpfs(draw: st.DrawFn) -> str:
    nine = draw(st.text(alphabet="0123456789", min_size=9, max_size=9))
    assume(len(set(nine)) > 1)
    return nine + cpf_check_digits(nine)


@st.composite
def valid_cnpjs(draw: st.DrawFn) -> str:
    twelve = draw(st.text(alphabet="0123456789", min_size=12, max_size=12))
    assume(len(set(twelve)) > 1)
    return twelve + cnpj_check_digits(twelve)


def _solve_cns(first14: str) -> str | None:
    s = sum(int(c) * w for c, w in zip(first14, range(15, 1, -1), strict=True))
    last = (-s) % 11
    return None if last == 10 else first14 + str(last)


@st.composite
def definitive_cnss(draw: st.DrawFn) -> str:
    head = draw(st.sampled_from("12"))
    body = draw(st.text(alphabet="0123456789", min_size=10, max_size=10))
    flag = draw(st.sampled_from("01"))
    cns = _solve_cns(head + body + "00" + flag)
    assume(cns is not None)
    assert cns is not None
    return cns


@st.composite
def provisional_cnss(draw: st.DrawFn) -> str:
    head = draw(st.sampled_from("789"))
    body = draw(st.text(alphabet="0123456789", min_size=13, max_size=13))
    cns = _solve_cns(head + body)
    assume(cns is not None)
    assert cns is not None
    return cns


# --- CPF ------------------------------------------------------------------------------

FULLWIDTH_CPF = "".join(chr(0xFF10 + int(c)) for c in "11144477735")


@pytest.mark.parametrize(
    "raw", ["11144477735", "22233366638", "111.444.777-35", " 111.444.777-35 "]
)
def test_cpf_regulation_values_are_accepted(raw: str) -> None:
    cpf = Cpf.parse(raw)
    assert cpf.digits == re.sub(r"\D", "", raw)
    assert len(cpf.digits) == 11


def test_cpf_masked_and_bare_forms_are_equal() -> None:
    masked = Cpf.parse("111.444.777-35")
    bare = Cpf.parse("11144477735")
    assert masked == bare
    assert hash(masked) == hash(bare)
    assert masked.masked() == "111.444.777-35"
    assert Cpf.parse("111 444 777/35") == bare
    assert Cpf.parse("22233366638") != bare


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("11144477736", "invalid check digits"),
        ("11111111111", "all digits are equal"),
        ("1114447773", "must have 11 digits"),  # too short: never padded
        ("111444777350", "must have 11 digits"),
        ("111.444.777-3", "must have 11 digits"),
        ("", "is empty"),
        ("111.444.777-3a", "contains invalid characters"),
        (FULLWIDTH_CPF, "contains invalid characters"),  # str.isdigit() would say yes
    ],
)
def test_cpf_regulation_invalid_values_are_rejected(raw: str, reason: str) -> None:
    assert rejected(Cpf.parse, raw, "cpf").reason == reason


@pytest.mark.parametrize("digit", "0123456789")
def test_cpf_all_equal_digits_are_rejected_though_their_check_digits_fit(digit: str) -> None:
    raw = digit * 11
    assert cpf_check_digits(raw[:9]) == raw[9:]  # the checksum alone would accept them
    assert rejected(Cpf.parse, raw, "cpf").reason == "all digits are equal"


def test_cpf_constructor_only_takes_canonical_digits() -> None:
    assert Cpf("11144477735") == Cpf.parse("111.444.777-35")
    assert rejected(Cpf, "111.444.777-35", "cpf").reason == "must have 11 digits"
    assert rejected(Cpf, "11144477736", "cpf").reason == "invalid check digits"


def test_cpf_rejects_non_text() -> None:
    assert rejected(Cpf.parse, 11144477735, "cpf").reason == "must be text"  # type: ignore[arg-type]


def test_cpf_check_digits_helper() -> None:
    assert cpf_check_digits("111444777") == "35"
    assert cpf_check_digits("222333666") == "38"
    with pytest.raises(ValueError, match="9 ASCII digits"):
        cpf_check_digits("11144477")


def test_cpf_is_immutable_and_slotted() -> None:
    cpf = Cpf.parse("11144477735")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cpf.digits = "22233366638"  # type: ignore[misc]
    assert not hasattr(cpf, "__dict__")


@given(nine=st.text(alphabet="0123456789", min_size=9, max_size=9))
def test_cpf_helper_matches_reference(nine: str) -> None:
    assume(len(set(nine)) > 1)
    assert ref_cpf_valid(nine + cpf_check_digits(nine))


@given(valid_cpfs())
def test_generated_cpfs_are_accepted_in_any_form(digits: str) -> None:
    bare = Cpf.parse(digits)
    masked = Cpf.parse(f"{digits[:3]}.{digits[3:6]}.{digits[6:9]}-{digits[9:]}")
    assert bare.digits == digits
    assert bare == masked
    assert Cpf.parse(bare.masked()) == bare


@given(valid_cpfs())
def test_cpf_single_digit_corruptions_are_rejected(digits: str) -> None:
    for position, bad in corruptions(digits):
        if ref_cpf_valid(bad):
            # The mod-11 rule maps remainders 0 and 1 to the same digit 0, so a few
            # single-digit changes (first or sixth digit, only when d1 is 0) land on
            # another valid CPF. Anything else would be a bug in the reference.
            assert position in (0, 5)
            assert digits[9] == "0"
            assert Cpf.parse(bad).digits == bad
            continue
        with pytest.raises(ValidationFailed) as info:
            Cpf.parse(bad)
        assert info.value.reason in {"invalid check digits", "all digits are equal"}


def test_cpf_checksum_misses_some_single_digit_changes() -> None:
    # Both are valid CPFs per the regulation's algorithm; they differ in one digit.
    assert Cpf.parse("70499962206") != Cpf.parse("80499962206")


# --- CNS ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "definitive"),
    [("144082627260004", True), ("898000000043208", False), ("144 0826 2726 0004", True)],
)
def test_cns_regulation_values_are_accepted(raw: str, definitive: bool) -> None:
    cns = Cns.parse(raw)
    assert cns.digits == raw.replace(" ", "")
    assert cns.is_definitive is definitive
    assert cns_is_valid(cns.digits)


def test_cns_grouping() -> None:
    cns = Cns.parse("144082627260004")
    assert cns.masked() == "144 0826 2726 0004"
    assert Cns.parse(cns.masked()) == cns


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("144082627260005", "invalid check digits"),
        ("14408262726000", "must have 15 digits"),  # never padded
        ("1440826272600040", "must have 15 digits"),
        ("600000000000009", "invalid first digit"),  # weighted sum fits, prefix 6 does not
        ("100000000000104", "invalid format"),  # weighted sum fits, not ...00[01]d
        ("144082627260004x", "contains invalid characters"),
    ],
)
def test_cns_invalid_values_are_rejected(raw: str, reason: str) -> None:
    assert rejected(Cns.parse, raw, "cns").reason == reason
    assert not cns_is_valid(raw)


@given(st.one_of(definitive_cnss(), provisional_cnss()))
def test_generated_cnss_are_accepted(digits: str) -> None:
    assert cns_is_valid(digits)
    cns = Cns.parse(digits)
    assert cns.digits == digits
    assert Cns.parse(f"{digits[:3]} {digits[3:7]} {digits[7:11]} {digits[11:]}") == cns
    assert cns.is_definitive is (digits[0] in "12")


@given(st.one_of(definitive_cnss(), provisional_cnss()))
def test_cns_single_digit_corruptions_are_rejected(digits: str) -> None:
    for position, bad in corruptions(digits):
        if ref_cns_valid(bad):
            # Digit 5 has weight 15 - 4 = 11: changing it never changes the sum mod 11.
            assert position == 4
            assert cns_is_valid(bad)
            continue
        assert position != 4
        assert not cns_is_valid(bad)
        with pytest.raises(ValidationFailed):
            Cns.parse(bad)


@given(st.text(alphabet="0123456789", min_size=15, max_size=15))
def test_cns_helper_matches_reference(digits: str) -> None:
    assert cns_is_valid(digits) is ref_cns_valid(digits)


# --- CNPJ -----------------------------------------------------------------------------


def test_cnpj_known_values() -> None:
    cnpj = Cnpj.parse("12.345.678/0001-95")
    assert cnpj.digits == "12345678000195"
    assert cnpj.masked() == "12.345.678/0001-95"
    assert str(cnpj) == "12.345.678/0001-95"  # a company id may be shown
    assert Cnpj.parse("11222333000181") == Cnpj.parse("11.222.333/0001-81")
    assert cnpj_check_digits("112223330001") == "81"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("12.345.678/0001-96", "invalid check digits"),
        ("00000000000000", "all digits are equal"),
        ("1234567800019", "must have 14 digits"),
        ("123456780001950", "must have 14 digits"),
        ("12.345.678/0001-9A", "contains invalid characters"),  # no alphanumeric CNPJ
    ],
)
def test_cnpj_invalid_values_are_rejected(raw: str, reason: str) -> None:
    assert rejected(Cnpj.parse, raw, "cnpj").reason == reason


@given(valid_cnpjs())
def test_generated_cnpjs_are_accepted_and_corruptions_rejected(digits: str) -> None:
    assert ref_cnpj_valid(digits)
    cnpj = Cnpj.parse(digits)
    assert Cnpj.parse(cnpj.masked()) == cnpj
    for _, bad in corruptions(digits):
        if ref_cnpj_valid(bad):
            assert digits[12] == "0"  # only through the 0/1 remainder collapse
            assert Cnpj.parse(bad).digits == bad
            continue
        with pytest.raises(ValidationFailed):
            Cnpj.parse(bad)


# --- CEP, UF --------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["01310-100", "01310100", " 01310-100 "])
def test_cep_accepts_both_forms(raw: str) -> None:
    cep = Cep.parse(raw)
    assert cep.digits == "01310100"
    assert cep.masked() == "01310-100"


@pytest.mark.parametrize(
    "raw",
    ["0131-0100", "1310-100", "01310-1000", "0131010", "013101000", "01310_100", "", "abcde-fgh"],
)
def test_cep_rejects_malformed(raw: str) -> None:
    rejected(Cep.parse, raw, "cep")


@pytest.mark.parametrize("code", UF_CODES)
def test_every_uf_is_accepted_case_insensitively(code: str) -> None:
    assert Uf.parse(code.lower()).code == code
    assert Uf.parse(f" {code.title()} ") == Uf(code)


def test_there_are_27_ufs() -> None:
    assert len(set(UF_CODES)) == 27


@pytest.mark.parametrize("raw", ["XX", "S", "SPP", "", "BR", "S P"])
def test_uf_rejects_unknown(raw: str) -> None:
    assert rejected(Uf.parse, raw, "uf").reason == "unknown state code"


# --- Phone ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "digits", "mobile"),
    [
        ("(11) 98765-4321", "11987654321", True),
        ("11987654321", "11987654321", True),
        ("+55 (11) 98765-4321", "11987654321", True),
        ("+5511987654321", "11987654321", True),
        ("55 11 98765 4321", "11987654321", True),
        ("(11) 3456-7890", "1134567890", False),
        ("+55 21 2345-6789", "2123456789", False),
        ("55 3234-5678", "5532345678", False),  # DDD 55 (RS), no country code
        ("55 55 3234-5678", "5532345678", False),
        ("(99) 99999-9999", "99999999999", True),
    ],
)
def test_phone_accepts_brazilian_numbers(raw: str, digits: str, mobile: bool) -> None:
    phone = Phone.parse(raw)
    assert phone.digits == digits
    assert phone.is_mobile is mobile
    assert phone.e164() == "+55" + digits
    assert phone.area_code == digits[:2]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("(10) 98765-4321", "invalid area code"),
        ("(01) 98765-4321", "invalid area code"),
        ("(20) 3456-7890", "invalid area code"),
        ("(23) 3456-7890", "invalid area code"),  # two non-zero digits, but unassigned
        ("(11) 9876-543", "must have 10 or 11 digits"),
        ("(11) 98765-43210", "must have 10 or 11 digits"),
        ("+55 11 9876", "must have 10 or 11 digits"),
        ("(11) 88765-4321", "11-digit numbers must be mobiles starting with 9"),
        ("(11) 9876-5432", "landline numbers must start with 2 to 5"),  # old 8-digit mobile
        ("(11) 6456-7890", "landline numbers must start with 2 to 5"),
        ("+1 212 555 0100", "must be a Brazilian number"),
        ("11 98765.4321", "contains invalid characters"),
        ("11 9876a-4321", "contains invalid characters"),
        ("+55 +11 98765-4321", "contains invalid characters"),
    ],
)
def test_phone_rejects_invalid(raw: str, reason: str) -> None:
    assert rejected(Phone.parse, raw, "phone").reason == reason


@given(
    ddd=st.sampled_from(sorted(DDD_CODES)),
    sub=st.text(alphabet="0123456789", min_size=8, max_size=8),
)
def test_generated_mobiles_parse_the_same_in_every_format(ddd: str, sub: str) -> None:
    expected = ddd + "9" + sub
    forms = [
        expected,
        f"({ddd}) 9{sub[:4]}-{sub[4:]}",
        f"+55 {ddd} 9{sub[:4]} {sub[4:]}",
        f"55{expected}",
    ]
    phones = {Phone.parse(f) for f in forms}
    assert phones == {Phone(expected)}
    assert Phone(expected).is_mobile


@given(
    ddd=st.text(alphabet="0123456789", min_size=2, max_size=2),
    first=st.sampled_from("2345"),
    rest=st.text(alphabet="0123456789", min_size=7, max_size=7),
)
def test_landline_area_codes(ddd: str, first: str, rest: str) -> None:
    raw = ddd + first + rest
    if ddd in DDD_CODES:
        assert not Phone.parse(raw).is_mobile
    else:
        assert rejected(Phone.parse, raw, "phone").reason == "invalid area code"


def test_ddd_list_shape() -> None:
    assert len(DDD_CODES) == 67
    assert all(len(d) == 2 and "0" not in d for d in DDD_CODES)


# --- Email ----------------------------------------------------------------------------


def test_email_lowercases_domain_only() -> None:
    email = Email.parse("  Joao.Silva@Example.COM.br ")
    assert email.address == "Joao.Silva@example.com.br"
    assert email.local_part == "Joao.Silva"
    assert email.domain == "example.com.br"
    assert email.normalized() == "joao.silva@example.com.br"
    other = Email.parse("joao.silva@EXAMPLE.com.br")
    assert other != email
    assert other.normalized() == email.normalized()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "is empty"),
        ("no-at.example.com", "must contain exactly one @"),
        ("a@@example.com", "must contain exactly one @"),
        ("a@b@example.com", "must contain exactly one @"),
        ("@example.com", "missing local part"),
        ("a b@example.com", "must not contain spaces or control characters"),
        ("a\x00@example.com", "must not contain spaces or control characters"),
        ("a@localhost", "invalid domain"),
        ("a@.example.com", "invalid domain"),
        ("a@example.", "invalid domain"),
        ("a@exa..mple.com", "invalid domain"),
        ("x" * 65 + "@example.com", "local part too long"),
        ("x" * 64 + "@" + "d" * 186 + ".com", "too long"),  # 255 chars
    ],
)
def test_email_rejects_invalid(raw: str, reason: str) -> None:
    assert rejected(Email.parse, raw, "email").reason == reason


def test_email_length_limits_are_inclusive() -> None:
    raw = "x" * 64 + "@" + "d" * 185 + ".com"
    assert len(raw) == 254
    assert Email.parse(raw).address == raw


def test_email_constructor_requires_lower_case_domain() -> None:
    assert rejected(Email, "a@Example.com", "email").reason == "domain must be lower case"


# --- Blood type -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("a+", BloodType.A_POS),
        ("A-", BloodType.A_NEG),
        ("b+", BloodType.B_POS),
        ("B -", BloodType.B_NEG),
        ("AB-", BloodType.AB_NEG),
        ("ab+", BloodType.AB_POS),
        ("O +", BloodType.O_POS),
        (" o- ", BloodType.O_NEG),
    ],
)
def test_blood_types(raw: str, expected: BloodType) -> None:
    assert parse_blood_type(raw) is expected


@pytest.mark.parametrize("raw", ["C+", "A", "AB", "A+-", "", "0+", "A B+ +", "positive"])
def test_blood_type_rejects_unknown(raw: str) -> None:
    assert rejected(parse_blood_type, raw, "blood_type").reason == "unknown blood type"


# --- privacy --------------------------------------------------------------------------


def test_repr_and_str_hide_personal_identifiers() -> None:
    cpf = Cpf.parse("11144477735")
    cns = Cns.parse("144082627260004")
    phone = Phone.parse("(11) 98765-4321")
    email = Email.parse("joao.silva@example.com")
    secrets = {
        cpf: ["11144477735", "111.444.777-35", "111444777", "444"],
        cns: ["144082627260004", "1440826272", "144 0826"],
        phone: ["98765", "4321", "11987654321"],
        email: ["joao", "silva"],
    }
    for value, fragments in secrets.items():
        shown = [repr(value), str(value), f"{value}", repr([value]), repr({"v": value})]
        for text in shown:
            for fragment in fragments:
                assert fragment not in text, (type(value).__name__, fragment)
    assert "example.com" in str(email)  # the domain may be shown
    assert "11" in repr(phone)  # the area code may be shown


def test_bad_cpf_message_does_not_contain_the_input() -> None:
    for raw in ["11144477736", "111.444.777-36", "1114447773", "111444777350"]:
        error = rejected(Cpf.parse, raw, "cpf")
        for text in (str(error), error.message, error.reason, repr(error)):
            assert raw not in text
            assert "1114447" not in text


PARSERS = [
    (Cpf.parse, "cpf"),
    (Cns.parse, "cns"),
    (Cnpj.parse, "cnpj"),
    (Cep.parse, "cep"),
    (Uf.parse, "uf"),
    (Phone.parse, "phone"),
    (Email.parse, "email"),
    (parse_blood_type, "blood_type"),
]


@pytest.mark.parametrize(("parse", "field"), PARSERS)
@given(raw=st.one_of(st.text(max_size=30), digit_strings))
def test_parsers_fail_only_with_validation_failed_and_never_echo_input(
    parse: object, field: str, raw: str
) -> None:
    assert callable(parse)
    error: ValidationFailed | None = None
    try:
        parse(raw)
    except ValidationFailed as exc:
        error = exc
    if error is not None:
        assert error.field == field
        # Reasons hold at most two digits in a row, so a longer digit run from the
        # input showing up in the message could only be an echo of the input.
        for run in re.findall(r"[0-9]{3,}", raw):
            assert run not in str(error)
