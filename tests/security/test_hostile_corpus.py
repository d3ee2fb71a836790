"""A hostile-input and privacy corpus over every operation of the OpenAPI document.

For each operation (path and method) variants are generated from its parameters and its
request-body schema: each query, path and header parameter and each body field (walked
through the JSON schema) gets the hostile values of its kind (dates PostgreSQL or Python
cannot hold, huge numbers, NUL bytes, lone surrogates, RTL marks, SQL-ish text, CPFs,
e-mails and names, wrong types, nesting past the limit), and the whole body is attacked
(nesting 600 levels, CPF/e-mail/name keys, wrong top-level types, malformed JSON, bodies
over the limit with a Content-Length and chunked). Keyset cursors are forged, altered and
taken from another clinic or another listing. Everything is sent as the admin of a seeded
clinic, and a few variants without a token or with a token that is a CPF.

The rules, for every answer: no 5xx; an error is ``application/problem+json``; no error
body and no header repeats a planted value (the CPF 111.444.777-35 / 11144477735, the
e-mail, the name); an ``X-Request-ID`` made of one is replaced; no log line holds one; an
oversize body is 413. Violations are collected per operation and reported by operation,
variant class, place and status, never by value.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi.testclient import TestClient

from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.entrypoints.api.app import create_app
from neonpro.logs import build_formatter
from neonpro.services import clinics
from tests.conftest import make_keyring, make_settings
from tests.e2e.api_helpers import headers
from tests.reliability.harness import ThreadServer

MAX_BODY = 64_000
SYSTEM = Actor(uuid.UUID("00000000-0000-0000-0000-00000000c0c0"), "admin")

# --- the planted values: none may come back in an error, a header or a log line ----------

CPF = "111.444.777-35"
CPF_DIGITS = "11144477735"
EMAIL = "joaquina.sigilosa@exemplo.test"
NAME = "Joaquina Plantada Sigilosa"
# lower-cased needles; "sigilosa" is in the name and the e-mail, and is planted alone in
# the unicode and SQL-ish values below so that an echo of any of them is caught too
NEEDLES = (CPF, CPF_DIGITS, EMAIL, NAME.lower(), "sigilosa", "plantada")


def leaked(text: str) -> bool:
    lowered = text.lower()
    squeezed = re.sub(r"[.\-\s/]", "", lowered)
    return any(n in lowered for n in NEEDLES) or CPF_DIGITS in squeezed


class Raw:
    """A JSON fragment json.dumps cannot write (NaN, Infinity, 1e999): put in verbatim."""

    def __init__(self, text: str) -> None:
        self.text = text


def nested(depth: int) -> Raw:
    """Objects and lists in turn (an object outermost, as the object fields expect), ``depth``
    levels deep, as JSON text (json.dumps itself recurses per level)."""
    opening = "".join("[" if i % 2 else '{"a": ' for i in range(depth))
    closing = "".join("]" if i % 2 else "}" for i in reversed(range(depth)))
    return Raw(f'{opening}{{"leaf": "Sigilosa"}}{closing}')


# (class, value) pairs; every class of the issue is here
STRINGS: list[tuple[str, Any]] = [
    ("pii.cpf", CPF), ("pii.cpf_digits", CPF_DIGITS), ("pii.email", EMAIL), ("pii.name", NAME),
    ("unicode.nul", "Sigilosa\x00x"), ("unicode.lone_surrogate", "\ud800Sigilosa\udfff"),
    ("unicode.rtl", "\u202eSigilosa\u200f\u2066x\u2069"), ("unicode.zero_width", "Sig\u200bilosa\ufeff"),
    ("sql", "Sigilosa'; DROP TABLE patients; --"), ("sql", "' OR '1'='1' /*"),
    ("huge.string", "Sigilosa" * 3_000), ("empty", ""), ("control", "\x1b[31mSigilosa\r\n\t"),
]
DATES: list[tuple[str, Any]] = [
    ("date.year1", "0001-01-05T00:00:00+00:00"), ("date.year9999_offset", "9999-12-31T23:59:59-03:00"),
    ("date.year0", "0000-01-01T00:00:00Z"), ("date.year10000", "10000-01-01T00:00:00Z"),
    ("date.impossible", "2024-02-30T25:61:00Z"), ("date.day_year1", "0001-01-01"),
    ("date.day_year9999", "9999-12-31"), ("date.huge_number", 10**30),
    ("date.epoch_float", 1e308), ("date.pii", CPF),
]
NUMBERS: list[tuple[str, Any]] = [
    ("number.huge", 10**40), ("number.negative_huge", -(10**40)), ("number.int64_edge", 2**63),
    ("number.float_huge", 1e308), ("number.nan", Raw("NaN")), ("number.infinity", Raw("Infinity")),
    ("number.overflow_literal", Raw("1e999")), ("number.negative", -1), ("number.string_pii", CPF_DIGITS),
]
UUIDS: list[tuple[str, Any]] = [
    ("uuid.not_uuid", "Sigilosa"), ("uuid.nil", "00000000-0000-0000-0000-000000000000"),
    ("uuid.pii", CPF), ("uuid.trailing", f"{uuid.UUID(int=1)}' OR 1=1"),
    ("uuid.email", EMAIL), ("uuid.random", str(uuid.UUID(int=987654321))),
]
WRONG_TYPES: list[tuple[str, Any]] = [
    ("wrong_type.list", [NAME, CPF]), ("wrong_type.object", {"id": CPF, EMAIL: NAME}),
    ("wrong_type.bool", True), ("wrong_type.number", 10**30), ("wrong_type.null", None),
    ("wrong_type.nested", nested(600)),
]
PATH_VALUES: list[tuple[str, str]] = [
    ("path.not_uuid", "Sigilosa"), ("path.cpf", CPF), ("path.email", EMAIL),
    ("path.nil_uuid", "00000000-0000-0000-0000-000000000000"), ("path.nul", "%00Sigilosa"),
    ("path.traversal", "..%2F..%2Fetc%2Fpasswd"), ("path.long", "9" * 2_000),
    ("path.rtl", "%E2%80%AESigilosa"), ("path.lone_surrogate", "%ED%A0%80Sigilosa"),
    ("path.uuid_suffix", f"{uuid.UUID(int=5)}%27%20OR%201=1"),
]
RAW_QUERIES: list[tuple[str, str]] = [  # whole query strings, percent-encoded by hand
    ("query.bad_utf8", "%FF%FE=%FFSigilosa"), ("query.nul_key", "Sigilosa%00=1"),
    ("query.pii_key", f"{CPF_DIGITS}={CPF_DIGITS}&{EMAIL}=1"),
    ("query.bare", "&&==&Sigilosa"),
]
HEADER_IDS: list[tuple[str, str]] = [
    ("request_id.name", "JoaquinaPlantadaSigilosa"), ("request_id.email", EMAIL),
    ("request_id.cpf", CPF), ("request_id.cpf_digits", CPF_DIGITS),
]
# an SSE stream never ends: it is driven over a real server and its 200 is not read to the
# end (headers only); everything else goes through the in-process TestClient
STREAMS = frozenset({("get", "/feed/appointments")})
# an appointment's base slot: each request gets a fresh one (_send), so that a hostile
# value is not stopped by a double booking before it reaches the database
SLOT_START = "2031-05-05T10:00:00-03:00"
SLOT_END = "2031-05-05T10:30:00-03:00"


# records of their own for the operations that use theirs up (a deleted or erased patient,
# a rescheduled or cancelled appointment) or need one of a kind (a telemedicine session)
OWN_IDS: dict[tuple[str, str], dict[str, str]] = {
    ("delete", "/patients/{patient_id}"): {"patient_id": "victim_delete"},
    ("post", "/lgpd/patients/{patient_id}/erasure"): {"patient_id": "victim_erasure"},
    ("delete", "/appointments/{appointment_id}"): {"appointment_id": "appt_delete"},
    ("post", "/appointments/{appointment_id}/reschedule"): {"appointment_id": "appt_reschedule"},
    ("post", "/appointments/{appointment_id}/cancel"): {"appointment_id": "appt_cancel"},
    ("post", "/appointments/{appointment_id}/confirm"): {"appointment_id": "appt_confirm"},
    **{("post", f"/appointments/{{appointment_id}}/telemedicine/{step}"):
       {"appointment_id": "appt_tele"} for step in ("join", "leave", "recording-consent", "end")},
}
# fields and parameters an operation needs beyond those the schema requires (one of two
# alternatives, a field a rule asks for), so that the base request is accepted
EXTRAS: dict[tuple[str, str], dict[str, Any]] = {
    ("get", "/audit/investigate"): {"actor_id": "actor_id"},
    ("get", "/lgpd/incidents/{incident_id}/affected"): {"actor_id": "actor_id"},
    ("post", "/lgpd/incidents/{incident_id}/affected"): {"actor_id": "actor_id"},
    ("post", "/lgpd/incidents/{incident_id}/close"): {"mitigation": "Senhas trocadas"},
    ("post", "/lgpd/retention-policies"): {"period_days": 30},
    ("post", "/lgpd/requests/{request_id}/fulfil"): {"response_sha256": "b" * 64},
}
BY_NAME: dict[str, Any] = {
    "start_time": SLOT_START, "end_time": SLOT_END, "start": "2031-05-01T00:00:00-03:00",
    "since": "2031-05-01T00:00:00-03:00", "end": "2031-05-20T00:00:00-03:00",
    "until": "2031-05-20T00:00:00-03:00", "terms_hash": "a" * 64,
    "email": "contato@exemplo.test", "version": 1, "duration_minutes": 30,
}
PAST = ("detected_at", "learned_at", "received_at", "disclosed_at", "closed_at", "at")


# --- the operations, read from the document at collection time ---------------------------


def _document() -> dict[str, Any]:
    """The OpenAPI document of an app over a container that never connects (lazy)."""
    url = "postgresql://nobody@127.0.0.1:1/never"
    box = Container(make_settings(url, jwt_secret="c" * 32), database_url=url,
                    keyring=make_keyring())
    try:
        return create_app(box).openapi()
    finally:
        box.close()


DOCUMENT = _document()
# operations left out of the corpus, each with its reason: none (the endless SSE stream is
# driven over a real server and judged by its status and headers, see STREAMS)
EXCLUDED: dict[tuple[str, str], str] = {}
OPERATIONS = [(method, path) for path, ops in DOCUMENT["paths"].items() for method in ops
              if (method, path) not in EXCLUDED]




# --- schema walking ------------------------------------------------------------------------


def _resolve(schema: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _kind(schema: dict[str, Any], spec: dict[str, Any]) -> str:
    """string, date, uuid, number, boolean, array, object or enum (the non-null branch)."""
    schema = _resolve(schema, spec)
    options = [_resolve(s, spec) for s in schema.get("anyOf", [schema])]
    options = [s for s in options if s.get("type") != "null"] or options
    first = options[0]
    if "enum" in first:
        return "enum"
    fmt = first.get("format", "")
    if fmt in ("date", "date-time"):
        return "date"
    if fmt == "uuid":
        return "uuid"
    kind = first.get("type", "object")
    if kind in ("integer", "number"):
        return "number"
    return str(kind)


def _base_value(name: str, schema: dict[str, Any], spec: dict[str, Any],
                ids: dict[str, str]) -> Any:
    """A plausible valid value, so that one hostile field reaches as deep as it can."""
    resolved = _resolve(schema, spec)
    options = [_resolve(s, spec) for s in resolved.get("anyOf", [resolved])]
    non_null = [s for s in options if s.get("type") != "null"] or options
    first = non_null[0]
    if "enum" in first:
        return first["enum"][0]
    kind = _kind(schema, spec)
    values: dict[str, Any] = {
        "date": "2031-05-05" if first.get("format") == "date" else "2031-05-05T10:00:00-03:00",
        "uuid": ids.get(name, ids["patient_id"]), "number": 1, "boolean": True,
        "array": [], "object": {},
    }
    if name in PAST:
        return "2026-01-02T10:00:00-03:00"
    return BY_NAME.get(name, values.get(kind, "Texto comum"))


def _required_body(schema: dict[str, Any], spec: dict[str, Any],
                   ids: dict[str, str]) -> dict[str, Any]:
    resolved = _resolve(schema, spec)
    options = [_resolve(s, spec) for s in resolved.get("anyOf", [resolved])]
    target = next((s for s in options if "properties" in s), {})
    required = target.get("required", [])
    return {name: _base_value(name, prop, spec, ids)
            for name, prop in target.get("properties", {}).items() if name in required}


def _body_schema(op: dict[str, Any]) -> dict[str, Any] | None:
    content = op.get("requestBody", {}).get("content", {})
    return content.get("application/json", {}).get("schema") if content else None


def _body_fields(schema: dict[str, Any], spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    resolved = _resolve(schema, spec)
    options = [_resolve(s, spec) for s in resolved.get("anyOf", [resolved])]
    target = next((s for s in options if "properties" in s), {})
    return dict(target.get("properties", {}))


def _pick(pool: list[tuple[str, Any]], start: int, count: int) -> list[tuple[str, Any]]:
    """``count`` values of ``pool`` from ``start`` on (round robin: every value is used by
    some field of an operation with enough fields, and each field gets a handful)."""
    return [pool[(start + i) % len(pool)] for i in range(min(count, len(pool)))]


def _values_for(kind: str, seed: int, *, full: bool = False) -> list[tuple[str, Any]]:
    """The hostile values of a field or parameter of ``kind``; a string gets six of the
    string corpus in turn; ``full`` (an operation's first string field, or its first field
    if none is a string) adds the whole string corpus."""
    chosen = _typed_values(kind, seed)
    if full:
        chosen += [s for s in STRINGS if s not in chosen]
    return chosen


def _typed_values(kind: str, seed: int) -> list[tuple[str, Any]]:
    if kind == "date":
        return [*DATES, *_pick(STRINGS, seed, 2), *_pick(WRONG_TYPES, seed, 2)]
    if kind == "uuid":
        return [*UUIDS, *_pick(STRINGS, seed, 2), *_pick(WRONG_TYPES, seed, 2)]
    if kind == "number":
        return [*NUMBERS, *_pick(DATES, seed, 1), *_pick(WRONG_TYPES, seed, 2)]
    if kind in ("boolean", "enum"):
        return [*_pick(STRINGS, seed, 4), *_pick(NUMBERS, seed, 2), *_pick(WRONG_TYPES, seed, 3)]
    if kind in ("object", "array"):
        return [("nesting.600", nested(600)), ("nesting.17", nested(17)),
                ("keys.pii", {CPF: NAME, EMAIL: CPF_DIGITS, NAME: {CPF_DIGITS: EMAIL}}),
                ("unicode.nul_key", {"Sigilosa\x00": "x"}), *_pick(STRINGS, seed, 3),
                *_pick(WRONG_TYPES, seed, 2)]
    return [*_pick(STRINGS, seed * 5, 6), *_pick(DATES, seed, 1), *_pick(WRONG_TYPES, seed, 3)]


def _query_text(value: Any) -> list[str]:
    """The query-string forms of a corpus value (a list repeats the parameter)."""
    if isinstance(value, Raw):
        return [value.text]
    if isinstance(value, list):
        return [json.dumps(v) if not isinstance(v, str) else v for v in value][:3]
    if isinstance(value, dict):
        return [json.dumps(value)[:3000]]
    if value is None:
        return ["null"]
    if isinstance(value, bool):
        return ["maybe"]
    return [str(value)]


# --- variants --------------------------------------------------------------------------------


@dataclass
class Variant:
    kind: str  # the class reported
    where: str  # the parameter or field, never the value
    method: str
    url: str  # path with its query, percent-encoded as sent
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    chunked: bool = False
    expect: int | None = None  # the status this variant must get, when one is right
    request_id: str | None = None  # a request id that must be replaced
    refresh: str | None = None  # the resource whose current version the body's base takes
    refused: bool = False  # a value no operation may accept (any 2xx is a violation)
    template: str = ""  # the operation's path template


def _encode(value: Any) -> bytes:
    """JSON with lone surrogates escaped (ensure_ascii) and Raw fragments put in verbatim."""
    raws: list[str] = []

    def swap(item: Any) -> Any:
        if isinstance(item, Raw):
            raws.append(item.text)
            return f"@@RAW{len(raws) - 1}@@"
        if isinstance(item, dict):
            return {k: swap(v) for k, v in item.items()}
        if isinstance(item, list):
            return [swap(v) for v in item]
        return item

    text = json.dumps(swap(value))
    for i, raw in enumerate(raws):
        text = text.replace(f'"@@RAW{i}@@"', raw)
    return text.encode()


def _nested_text(depth: int) -> bytes:
    return ("[" * depth + "]" * depth).encode()


def _fill_path(path: str, op: dict[str, Any], ids: dict[str, str]) -> str:
    for p in op.get("parameters", []):
        if p["in"] == "path":
            path = path.replace("{" + p["name"] + "}", ids.get(p["name"], str(uuid.uuid4())))
    return path


def _query(params: list[tuple[str, str]]) -> str:
    """Percent-encoded by hand: a lone surrogate goes as the bytes it would be (invalid
    UTF-8), which no URL library writes."""
    return "&".join(f"{quote(k)}={quote(v.encode('utf-8', 'surrogatepass'), safe='')}"
                    for k, v in params)


class _Builder:
    """The variants of one operation, built around a base request that is accepted (as far
    as the seeded records allow) so that each hostile value reaches as deep as it can."""

    def __init__(self, method: str, path: str, spec: dict[str, Any], ids: dict[str, str]) -> None:
        self.method, self.path, self.spec = method, path, spec
        self.op = spec["paths"][path][method]
        self.ids = ids = _ids_for(method, path, ids)
        self.parameters: list[dict[str, Any]] = self.op.get("parameters", [])
        extras = {k: ids.get(v, v) if isinstance(v, str) else v
                  for k, v in EXTRAS.get((method, path), {}).items()}
        queries = [p for p in self.parameters if p["in"] == "query"]
        self.base_query = [(p["name"], str(_base_value(p["name"], p.get("schema", {}), spec, ids)))
                           for p in queries if p.get("required")]
        self.base_query += [(p["name"], str(extras[p["name"]])) for p in queries
                            if p["name"] in extras]
        self.bare = _fill_path(path, self.op, ids)
        self.target = (f"{self.bare}?{_query(self.base_query)}" if self.base_query
                       else self.bare)
        self.body_schema = _body_schema(self.op)
        self.base_body = (_required_body(self.body_schema, spec, ids)
                          if self.body_schema else None)
        if self.base_body is not None and self.body_schema is not None:
            fields = _body_fields(self.body_schema, spec)
            self.base_body.update({k: v for k, v in extras.items() if k in fields})
        self.base = None if self.base_body is None else _encode(self.base_body)
        self.refresh = (_version_source(path, ids)
                        if self.base_body and "version" in self.base_body else None)
        self.out: list[Variant] = []

    def add(self, kind: str, where: str, url: str, body: bytes | None | bool = True,
            extra: dict[str, str] | None = None, **more: Any) -> None:
        sent = self.base if body is True else body if isinstance(body, bytes) else None
        hdrs = {**({"content-type": "application/json"} if sent is not None else {}),
                **(extra or {})}
        self.out.append(Variant(kind, where, self.method, url, hdrs, sent,
                                refresh=None if where == "body:version" else self.refresh,
                                **more))

    def path_parameter(self, name: str) -> None:
        for cls, raw in PATH_VALUES:
            url = _fill_path(self.path.replace("{" + name + "}", raw), self.op, self.ids)
            self.add(cls, f"path:{name}", self.target.replace(self.bare, url, 1))
        foreign = self.path.replace("{" + name + "}",
                                    self.ids.get(f"foreign_{name}", str(uuid.uuid4())))
        self.add("path.foreign", f"path:{name}",
                 self.target.replace(self.bare, _fill_path(foreign, self.op, self.ids), 1))

    def query_parameter(self, name: str, kind: str, seed: int, *, full: bool,
                        cursors: list[tuple[str, str]]) -> None:
        rest = [(n, v) for n, v in self.base_query if n != name]
        for cls, value in _values_for(kind, seed, full=full):
            texts = _query_text(value)
            self.add(cls, f"query:{name}",
                     f"{self.bare}?{_query(rest + [(name, t) for t in texts])}")
        if name == "cursor":  # a cursor this API did not issue for this query: refused
            for cls, cursor in cursors:
                self.add(cls, "query:cursor",
                         f"{self.bare}?{_query([*rest, ('cursor', cursor)])}", expect=422)

    def header_parameter(self, name: str, seed: int) -> None:
        for cls, value in [*_pick(STRINGS, seed, 4), *HEADER_IDS]:
            text = value if isinstance(value, str) else ""
            safe = text.encode("latin-1", "ignore").decode("latin-1")
            safe = "".join(c for c in safe if c.isprintable())[:4000]
            self.add(f"header.{cls}", f"header:{name}", self.target, extra={name: safe})

    def parameters_and_headers(self, cursors: list[tuple[str, str]]) -> None:
        queries = [p for p in self.parameters if p["in"] == "query"]
        first = next((p["name"] for p in queries
                      if _kind(p.get("schema", {}), self.spec) == "string"),
                     queries[0]["name"] if queries else None)
        for i, p in enumerate(self.parameters):
            name, place = p["name"], p["in"]
            if place == "path":
                self.path_parameter(name)
            elif place == "query":
                self.query_parameter(name, _kind(p.get("schema", {}), self.spec), i,
                                     full=name == first, cursors=cursors)
            elif place == "header":
                self.header_parameter(name, i)
        for cls, raw in RAW_QUERIES:
            self.add(cls, "query", f"{self.target}{'&' if self.base_query else '?'}{raw}")
        for cls, rid in HEADER_IDS:
            self.add(cls, "header:X-Request-ID", self.target, extra={"X-Request-ID": rid},
                     request_id=rid)
        # headers every request has, that reach the audit context and the log lines
        for cls, value in [("user_agent.name", NAME), ("user_agent.email", EMAIL),
                           ("user_agent.cpf", CPF), ("user_agent.long", "Sigilosa/" * 2_000),
                           ("user_agent.sql", "Sigilosa'); DROP TABLE audit_events; --")]:
            self.add(cls, "header:User-Agent", self.target, extra={"User-Agent": value})
        self.add("accept.html", "header:Accept", self.target,
                 extra={"Accept": "text/html", "Accept-Language": NAME})
        documented = set(self.spec["paths"][self.path])
        other = next(m for m in ("put", "patch", "delete", "post", "get") if m not in documented)
        self.out.append(Variant("method.undocumented", f"method:{other.upper()}", other,
                                self.target, expect=405))

    def body_fields(self) -> None:
        if self.body_schema is None or self.base_body is None:
            return
        base_body = self.base_body
        fields = _body_fields(self.body_schema, self.spec)
        first = next((n for n, p in fields.items() if _kind(p, self.spec) == "string"),
                     next(iter(fields), None))
        for i, (name, prop) in enumerate(fields.items()):
            for cls, value in _values_for(_kind(prop, self.spec), i, full=name == first):
                # nesting past the limit (16) is refused wherever it is put
                self.add(cls, f"body:{name}", self.target,
                         body=_encode({**base_body, name: value}),
                         refused=cls.startswith("nesting."))

    def whole_bodies(self) -> None:
        if self.base_body is None or self.base is None:
            return
        base_body, base = self.base_body, self.base
        whole: list[tuple[str, bytes]] = [
            ("body.nesting_600", _encode({**base_body, "a": nested(600)})),
            ("body.nesting_5000_text", _nested_text(5_000)),
            ("body.nesting_100000_text", _nested_text(100_000)[:MAX_BODY - 10]),
            ("body.pii_keys", _encode({**base_body, CPF: 1, EMAIL: NAME, NAME: CPF_DIGITS})),
            ("body.pii_keys_only", _encode({CPF: NAME, CPF_DIGITS: EMAIL})),
            ("body.list", _encode([base_body, NAME])), ("body.string", _encode(NAME)),
            ("body.number", b"1e999"), ("body.null", b"null"), ("body.empty", b""),
            ("body.truncated", base[:-1] + b',"Sigilosa": "' + CPF.encode()),
            ("body.bad_utf8", b'{"x": "\xff\xfeSigilosa"}'),
            ("body.bom", b"\xef\xbb\xbf" + base),
            ("body.utf16", _encode({**base_body, "Sigilosa": CPF}).decode().encode("utf-16")),
            ("body.utf32", base.decode().encode("utf-32")),
            ("body.duplicate_keys", base[:-1] + (b", " if base_body else b"")
             + b'"' + CPF.encode() + b'": 1, "' + CPF.encode() + b'": "Sigilosa"}'),
        ]
        for cls, raw in whole:
            self.add(cls, "body", self.target, body=raw)
        self.add("body.text_plain", "body", self.target, extra={"content-type": "text/plain"})
        oversize = b'{"full_name": "' + b"Sigilosa " * (MAX_BODY // 8) + b'"}'
        self.add("body.oversize_declared", "body", self.target, body=oversize, expect=413)
        self.add("body.oversize_chunked", "body", self.target, body=oversize, chunked=True,
                 expect=413)


def variants(method: str, path: str, spec: dict[str, Any], ids: dict[str, str],
             cursors: dict[str, list[tuple[str, str]]]) -> list[Variant]:
    """Every hostile variant of one operation, the base request (``baseline``) first."""
    builder = _Builder(method, path, spec, ids)
    builder.add("baseline", "nothing hostile", builder.target)
    builder.parameters_and_headers(cursors.get(path, []))
    builder.body_fields()
    builder.whole_bodies()
    return builder.out


def _ids_for(method: str, path: str, ids: dict[str, str]) -> dict[str, str]:
    """The seeded ids an operation acts on (:data:`OWN_IDS`)."""
    own = OWN_IDS.get((method, path), {})
    return {**ids, **{name: ids[key] for name, key in own.items()}}


def _version_source(path: str, ids: dict[str, str]) -> str | None:
    """The resource a body's ``version`` is of: the path up to its first id."""
    match = re.match(r"(/[a-z-]+/)\{(\w+)\}", path)
    return f"{match.group(1)}{ids[match.group(2)]}" if match and match.group(2) in ids else None


def anonymous_variants(method: str, path: str, spec: dict[str, Any],
                       ids: dict[str, str]) -> list[Variant]:
    """Without a token, and with tokens that are a CPF or an e-mail: refused or served,
    never a 5xx nor an echo."""
    op = spec["paths"][path][method]
    ids = _ids_for(method, path, ids)
    target = _fill_path(path, op, ids)
    body_schema = _body_schema(op)
    body = _encode(_required_body(body_schema, spec, ids)) if body_schema else None
    hdrs = {"content-type": "application/json"} if body is not None else {}
    return [
        Variant("anonymous", "no token", method, target, dict(hdrs), body),
        Variant("anonymous.request_id", "no token", method, target,
                {**hdrs, "X-Request-ID": EMAIL}, body, request_id=EMAIL),
        Variant("anonymous.token_cpf", "header:Authorization", method, target,
                {**hdrs, "Authorization": f"Bearer {CPF}"}, body),
        Variant("anonymous.token_email", "header:Authorization", method, target,
                {**hdrs, "Authorization": f"Bearer {EMAIL}"}, body),
        Variant("anonymous.token_jwt_pii", "header:Authorization", method, target,
                {**hdrs, "Authorization": "Bearer " + ".".join(
                    base64.urlsafe_b64encode(json.dumps(part).encode()).decode().rstrip("=")
                    for part in ({"alg": "none"}, {"sub": EMAIL, "name": NAME}, "x"))}, body),
    ]


# --- fixtures ----------------------------------------------------------------------------------


CLIENT_LOGGERS = ("httpx", "httpcore")


class Lines(logging.Handler):
    """Every log line as the production formatter renders it (JSON)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(build_formatter(json=True))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(CLIENT_LOGGERS):  # the test's own client, not the server
            return
        try:
            self.lines.append(self.format(record))
        except Exception as exc:  # noqa: BLE001 - an unrenderable line is kept by class
            self.lines.append(f"<unformattable {type(exc).__name__}>")


@dataclass
class World:
    client: TestClient
    stream_base: str
    admin: dict[str, str]
    ids: dict[str, str]
    cursors: dict[str, list[tuple[str, str]]]
    spec: dict[str, Any]


def _seed(client: TestClient, hdrs: dict[str, str], suffix: str,
          planted: bool) -> dict[str, str]:
    """A clinic's records: a professional, a service type, patients (one with the planted
    CPF, e-mail and name), an appointment, a consent, an incident and a request."""

    def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = client.post(path, headers=hdrs, json=body)
        assert answer.status_code in (200, 201), (path, answer.status_code)
        result: dict[str, Any] = answer.json()
        return result

    professional = post("/professionals", {"full_name": f"Dra Corpus {suffix}"})
    post("/professionals", {"full_name": f"Dr Corpus {suffix}"})
    service = post("/service-types", {"name": f"Consulta {suffix}", "duration_minutes": 30})
    post("/service-types", {"name": f"Retorno {suffix}", "duration_minutes": 20})
    patient = post("/patients", {"full_name": NAME, "cpf": CPF, "email": EMAIL}
                   if planted else {"full_name": f"Paciente Alheia {suffix}"})
    for n in range(3):
        post("/patients", {"full_name": f"Paciente Corpus {suffix} {n}"})
    def book(day: int, kind: str = "in_person") -> str:
        booked: str = post("/appointments", {
            "patient_id": patient["id"], "professional_id": professional["id"],
            "service_type_id": service["id"], "appointment_type": kind,
            "start_time": f"2031-04-{day:02d}T09:00:00-03:00",
            "end_time": f"2031-04-{day:02d}T09:30:00-03:00"})["id"]
        return booked

    def consent_to(purpose: str) -> dict[str, Any]:
        return post("/consents", {"patient_id": patient["id"], "purpose": purpose,
                                  "terms_version": "v1", "terms_hash": "a" * 64,
                                  "collection_method": "online_form"})

    appointment = post("/appointments", {
        "patient_id": patient["id"], "professional_id": professional["id"],
        "service_type_id": service["id"], "start_time": "2031-05-05T10:00:00-03:00",
        "end_time": "2031-05-05T10:30:00-03:00"})
    own = {"appt_delete": book(1), "appt_reschedule": book(2), "appt_cancel": book(3),
           "appt_confirm": book(4)}
    consent = consent_to("marketing")
    consent_to("data_sharing")
    consent_to("telemedicine")
    own["appt_tele"] = book(7, "telemedicine")
    incident = post("/lgpd/incidents", {"detected_at": "2026-01-01T10:00:00-03:00",
                                        "description": "Corpus"})
    victims = [post("/patients", {"full_name": f"Paciente Vitima {suffix} {n}"})["id"]
               for n in range(2)]
    request = post("/lgpd/requests", {"patient_id": patient["id"], "kind": "access"})
    policy = post("/lgpd/retention-policies", {
        "data_category": "marketing", "trigger": "consent_revoked", "action": "delete",
        "period_days": 30, "legal_reference": "LGPD art. 16"})
    started = client.post(f"/appointments/{own['appt_tele']}/telemedicine/start", headers=hdrs)
    assert started.status_code in (200, 201), started.status_code
    session = started.json()["session_id"]
    return {"patient_id": patient["id"], "professional_id": professional["id"],
            "service_type_id": service["id"], "appointment_id": appointment["id"],
            "consent_id": consent["id"], "incident_id": incident["id"],
            "request_id": request["id"], "policy_id": policy["id"], "session_id": session,
            "actor_id": str(uuid.uuid4()), "user_id": str(uuid.uuid4()),
            "consent_record_id": consent["id"], "primary_professional_id": professional["id"],
            "victim_delete": victims[0], "victim_erasure": victims[1], **own}


def _cursor(client: TestClient, hdrs: dict[str, str], path: str) -> str | None:
    answer = client.get(path, headers=hdrs, params={"cursor": "", "limit": 1})
    if answer.status_code != 200:
        return None
    found: str | None = answer.json().get("next_cursor")
    return found


def _flip(cursor: str) -> str:
    middle = len(cursor) // 2
    swapped = "A" if cursor[middle] != "A" else "B"
    return cursor[:middle] + swapped + cursor[middle + 1:]


@pytest.fixture(scope="module")
def world(database_url: str) -> Iterator[World]:
    settings = make_settings(database_url, jwt_secret="h" * 32, max_body_bytes=MAX_BODY)
    box = Container(settings, database_url=database_url, keyring=make_keyring())
    app = create_app(box)
    ours = clinics.create_clinic(box.service_uow(SYSTEM), ClinicCreate(name="Hostil")).id
    theirs = clinics.create_clinic(box.service_uow(SYSTEM), ClinicCreate(name="Alheia")).id
    admin = headers(box, ours, "admin")
    foreign = headers(box, theirs, "admin")
    # its own app: the feed's listener lives on the loop that started it
    server = ThreadServer(create_app(box))
    # the test client logs each URL it calls, planted values and all: not the server's
    # lines, and kept out of the session's PII guard
    client_log = logging.getLogger("httpx")
    level = client_log.level
    client_log.setLevel(logging.WARNING)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            ids = _seed(client, admin, "A", planted=True)
            other = _seed(client, foreign, "B", planted=False)
            ids.update({f"foreign_{k}": v for k, v in other.items()})
            listings = [p for p, ops in DOCUMENT["paths"].items() if "get" in ops and any(
                q["name"] == "cursor" for q in ops["get"].get("parameters", []))]
            cursors: dict[str, list[tuple[str, str]]] = {}
            own = {p: _cursor(client, admin, p) for p in listings}
            alien = {p: _cursor(client, foreign, p) for p in listings}
            for path in listings:
                found: list[tuple[str, str]] = [
                    ("cursor.forged", base64.urlsafe_b64encode(
                        json.dumps([NAME, CPF]).encode()).decode()),
                    ("cursor.forged_random", base64.urlsafe_b64encode(bytes(range(48))).decode()),
                    ("cursor.garbage", "!!!Sigilosa!!!"), ("cursor.huge", "A" * 499)]
                if own[path]:
                    found += [("cursor.altered", _flip(own[path] or "")),
                              ("cursor.truncated", (own[path] or "")[:-3])]
                if alien[path]:
                    found.append(("cursor.foreign_clinic", alien[path] or ""))
                found += [("cursor.other_listing", c) for p, c in own.items()
                          if p != path and c][:2]
                cursors[path] = found
            yield World(client, server.base, admin, ids, cursors, app.openapi())
    finally:
        client_log.setLevel(level)
        server.stop()
        box.close()


# --- sending and judging -------------------------------------------------------------------


def _send(world: World, variant: Variant, hdrs: dict[str, str]) -> httpx.Response:
    if (variant.method, variant.template) in STREAMS:
        with httpx.Client(base_url=world.stream_base, timeout=10) as stream_client, \
                stream_client.stream(variant.method.upper(), variant.url, headers=hdrs,
                                     content=variant.body) as answer:
            if answer.status_code >= 400:
                answer.read()
            return answer
    content: Any = variant.body
    if content is not None and not variant.chunked:
        content = _fresh(world, variant, content)
    if variant.chunked and variant.body is not None:
        data = variant.body
        content = iter([data[i:i + 8192] for i in range(0, len(data), 8192)])
    return world.client.request(variant.method.upper(), variant.url, headers=hdrs,
                                content=content)


_SLOTS = iter(range(1, 1_000_000))
_VERSION = re.compile(rb'"version": 1(?=[,}])')


def _fresh(world: World, variant: Variant, body: bytes) -> bytes:
    """The body with a slot no other request took and the resource's current version (a
    stale version or a double booking would stop the hostile value before the database)."""
    n = next(_SLOTS)
    day = (date(2032, 1, 5) + timedelta(days=n // 5 * 7 + n % 5)).isoformat()  # weekdays
    body = body.replace(SLOT_START.encode(), f"{day}T10:00:00-03:00".encode())
    body = body.replace(SLOT_END.encode(), f"{day}T10:30:00-03:00".encode())
    if variant.refresh:
        current = world.client.get(variant.refresh, headers=world.admin)
        version = current.json().get("version") if current.status_code == 200 else None
        if isinstance(version, int):
            body = _VERSION.sub(f'"version": {version}'.encode(), body, count=1)
    return body


def judge(variant: Variant, answer: httpx.Response) -> list[str]:
    """The rules broken by one answer, described without any value."""
    broken = []
    status = answer.status_code
    if status >= 500:
        broken.append("5xx")
    content_type = answer.headers.get("content-type", "")
    if status >= 400 and not content_type.startswith("application/problem+json"):
        broken.append(f"error not problem+json ({content_type.split(';')[0] or 'none'})")
    if variant.expect is not None and status != variant.expect:
        broken.append(f"expected {variant.expect}")
    if variant.refused and status < 400:
        broken.append("accepted")
    if any(leaked(f"{k}: {v}") for k, v in answer.headers.items()):
        broken.append("planted value in a header")
    if status >= 400 and leaked(answer.content.decode("utf-8", "replace")):
        broken.append("planted value in the error body")
    if variant.request_id is not None and answer.headers.get("x-request-id") == variant.request_id:
        broken.append("X-Request-ID kept")
    return broken


def run(world: World, method: str, path: str, batch: list[Variant],
        auth: dict[str, str] | None) -> tuple[list[str], int]:
    lines = Lines()
    root = logging.getLogger()
    root.addHandler(lines)
    violations = []
    try:
        for variant in batch:
            variant.template = path
            hdrs = {**(auth or {}), **variant.headers}
            try:
                answer = _send(world, variant, hdrs)
            except Exception as exc:  # noqa: BLE001 - an exception escaping is a violation too
                violations.append(f"{method.upper()} {path} [{variant.kind}] at "
                                  f"{variant.where}: raised {type(exc).__name__}")
                continue
            violations.extend(
                f"{method.upper()} {path} [{variant.kind}] at {variant.where}: "
                f"{rule} (status {answer.status_code})" for rule in judge(variant, answer))
    finally:
        root.removeHandler(lines)
    dirty = [line for line in lines.lines if leaked(line)]
    if dirty:
        events = sorted({_event(line) for line in dirty})
        violations.append(f"{method.upper()} {path}: planted value in {len(dirty)} log "
                          f"line(s): events {events}")
    return violations, len(batch)


def _event(line: str) -> str:
    """The logger and event of a line, for the report; free text (which may be the very
    value) is named as such, never printed."""
    try:
        entry = json.loads(line)
    except ValueError:
        return "<not json>"
    event = str(entry.get("event", "?"))
    name = event if re.fullmatch(r"[a-z0-9_.]{1,60}", event) else "<free text>"
    return f"{entry.get('logger', '?')}:{name}"


# --- the tests -----------------------------------------------------------------------------------


def _id(operation: tuple[str, str]) -> str:
    return f"{operation[0].upper()} {operation[1]}"


@pytest.mark.parametrize("operation", OPERATIONS, ids=[_id(o) for o in OPERATIONS])
def test_hostile_input_never_breaks_nor_echoes(world: World,
                                               operation: tuple[str, str]) -> None:
    method, path = operation
    authenticated = variants(method, path, world.spec, world.ids, world.cursors)
    anonymous = anonymous_variants(method, path, world.spec, world.ids)
    violations, sent = run(world, method, path, authenticated, world.admin)
    more, sent_anonymously = run(world, method, path, anonymous, None)
    assert sent >= 4
    assert sent_anonymously == len(anonymous)
    found = sorted(set(violations + more))
    assert not found, f"{len(found)} violation(s):\n" + "\n".join(found)


def test_the_corpus_covers_every_operation_of_the_document(world: World) -> None:
    """The operations parametrized above are those of the live app's document, none left
    out (the stream is included, judged by its headers), and each gets variants of every
    kind that applies to it."""
    live = [(m, p) for p, ops in world.spec["paths"].items() for m in ops]
    assert len(OPERATIONS) == len(live) - len(EXCLUDED)
    assert sorted(OPERATIONS) == sorted(o for o in live if o not in EXCLUDED)
    assert len(live) >= 70
    for method, path in live:
        op = world.spec["paths"][path][method]
        kinds = {v.kind.split(".")[0] for v in variants(method, path, world.spec, world.ids,
                                                        world.cursors)}
        assert {"baseline", "request_id", "query", "user_agent", "method", "accept"} <= kinds, (
            method, path)
        if _body_schema(op) is not None:
            assert {"body", "pii", "wrong_type", "unicode", "sql"} <= kinds, (method, path)
        places = {p["in"] for p in op.get("parameters", [])}
        if "path" in places:
            assert "path" in kinds, (method, path)
        if any(p["name"] == "cursor" for p in op.get("parameters", [])):
            assert "cursor" in kinds, (method, path)


def test_the_judge_catches_what_it_is_for() -> None:
    """The rules fail on the defects they are there to find (a test that cannot fail is
    none)."""
    variant = Variant("x", "y", "get", "/", request_id=EMAIL)
    crash = httpx.Response(500, headers={"content-type": "text/plain"}, text="boom")
    assert "5xx" in judge(variant, crash)
    assert any("problem+json" in r for r in judge(variant, crash))
    echo = httpx.Response(422, headers={"content-type": "application/problem+json",
                                        "x-request-id": EMAIL},
                          text=json.dumps({"detail": "bad 111 444 777 35"}))
    assert "planted value in the error body" in judge(variant, echo)
    assert "X-Request-ID kept" in judge(variant, echo)
    assert "planted value in a header" in judge(variant, echo)
    clean = httpx.Response(422, headers={"content-type": "application/problem+json",
                                         "x-request-id": "ab" * 16}, text="{}")
    assert judge(variant, clean) == []
