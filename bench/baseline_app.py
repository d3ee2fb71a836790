"""The baseline of bench/api.py: the same database work as neonpro's GET /patients/{id}
and POST /appointments, on a Starlette app of its own with nothing else in it.

What it answers is the reviewer's question (issue 18): how much of a request's cost is
the work the database has to do, and how much is neonpro's stack around it. Per request,
exactly the SQL ``neonpro serve`` sends (captured from the API, statement for statement):

* the same HS256 JWT check as ``TokenCodec.decode``: signature, ``exp``, ``iss``, required
  ``exp sub iss jti``, the claims parsed (user and clinic UUIDs, non-nil clinic, role);
* the same session check, ``SELECT neonpro_session_live(token, user, clinic, role)``, one
  autocommit statement on the **service** login (``Container.session_live``);
* one transaction on the **application** login (neonpro connects as the role, never
  through ``SET ROLE``; so does this): ``BEGIN``; the project's ``SET_CONTEXT_BOUNDED``
  (``neonpro_bind_context`` with clinic, actor, role, request id, address, user agent and
  session; durable commit; ``statement_timeout``);
* GET: the repository's ``SELECT`` of the patient (the same columns, under row-level
  security); the same audit ``INSERT`` (action VIEW, resource patient,
  ``neonpro_patient_ref``); ``COMMIT``. No commit token: the API retries reads whole, so
  neonpro skips it for GET too. The answer is the row as JSON **without decryption**: the
  ``*_encrypted`` columns are sent as base64 of the ciphertext (neonpro decrypts seven
  fields with AES-GCM and validates the response model: that is part of what is compared);
* POST: the clinic's time zone; the professional's schedule row ``FOR UPDATE`` (the
  per-professional lock); the day's blocking appointments; the same rules checked on them
  (active, licence, weekend, working hours, break, daily maximum, overlap with buffer); the
  same ``INSERT ... RETURNING`` with the no-show score join (the exclusion constraint and
  the row-change audit trigger run in PostgreSQL, as for neonpro); the commit token
  (``durability_sql.PRE_COMMIT``); ``COMMIT``; 201 with the row.

Pools: ``psycopg_pool.AsyncConnectionPool`` of async psycopg connections (no threadpool
hop: the fast fair baseline for an asyncio server), one per login, sized like neonpro's
production engine (20, growing to 30), the same connection options (``statement_timeout``,
``TimeZone=UTC``, ``application_name``) and psycopg's defaults (server-side binding,
statements prepared after 5 executions). Unlike neonpro's SQLAlchemy pool, no pre-ping
on checkout (``pool_pre_ping=True`` costs neonpro a round trip per checkout, two per
request) and no reset ``ROLLBACK``: that difference is part of what is measured. Nor does
it run neonpro's background audit sealer, metrics or request middleware.

Run by bench/api.py as its own process (one uvicorn process, h11/asyncio as the venv
has them, log level warning, like ``neonpro serve``)::

    BASELINE_APP_URL=... BASELINE_SERVICE_URL=... BASELINE_JWT_SECRET=... \\
        .venv/bin/python bench/baseline_app.py --port 8001
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import jwt
import psycopg
import uvicorn
from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

ROLES = frozenset({"admin", "professional", "receptionist", "dpo"})
STAFF = frozenset({"admin", "professional", "receptionist"})
STATEMENT_TIMEOUT_MS = 15_000  # production's pool setting (neonpro takes min(it, time left))

SESSION_LIVE = "SELECT neonpro_session_live(%(token)s, %(user)s, %(clinic)s, %(role)s)"
SET_CONTEXT_BOUNDED = (
    "SELECT neonpro_bind_context(%(clinic_id)s, %(actor_id)s, %(actor_role)s, %(request_id)s, "
    "%(ip)s, %(user_agent)s, %(session_id)s), set_config('synchronous_commit', CASE "
    "current_setting('synchronous_commit') WHEN 'off' THEN 'on' ELSE "
    "current_setting('synchronous_commit') END, true), "
    "set_config('statement_timeout', %(statement_timeout)s, true)")
PATIENT_COLUMNS = (
    "id", "clinic_id", "medical_record_number", "full_name", "given_names", "family_name",
    "preferred_name", "birth_date", "gender", "marital_status", "nationality",
    "deceased_indicator", "deceased_date", "photo_url", "rg_issuing_organ", "external_ids",
    "phone_primary", "phone_secondary", "email", "preferred_contact_method",
    "language_preference", "address_line1", "address_line2", "city", "state", "postal_code",
    "country", "blood_type", "allergies", "chronic_conditions", "current_medications",
    "accessibility_needs", "primary_professional_id", "insurance_provider",
    "insurance_number", "insurance_plan", "ans_operator_code", "emergency_contact_name",
    "emergency_contact_phone", "emergency_contact_relationship", "data_consent_status",
    "data_consent_version", "data_retention_until", "anonymization_scheduled_at",
    "anonymized_at", "blocked_at", "right_to_forget_requested_at",
    "data_portability_requested_at", "data_source", "registration_source",
    "no_show_risk_score", "total_no_shows", "total_appointments", "last_no_show_date",
    "is_active", "last_visit_date", "next_appointment_date", "created_at", "created_by",
    "updated_at", "updated_by", "version", "deleted_at", "cpf_encrypted", "cns_encrypted",
    "rg_encrypted", "passport_number_encrypted", "emergency_contact_cpf_encrypted",
    "patient_notes_encrypted", "internal_notes_encrypted",
)
SELECT_PATIENT = (
    "SELECT " + ", ".join(f"patients.{c}" for c in PATIENT_COLUMNS) + " \nFROM patients \n"
    "WHERE patients.clinic_id = %(b_clinic)s::UUID AND patients.id = %(b_id)s::UUID "
    "AND patients.deleted_at IS NULL")
AUDIT_INSERT = (
    "INSERT INTO audit_events (clinic_id, actor_id, actor_role, action, resource_type, "
    "resource_id, patient_ref, status, risk_level, ip_address, user_agent, session_id, "
    "request_id, details) VALUES (%(clinic)s, %(actor)s, %(role)s, %(action)s, %(rtype)s, "
    "%(rid)s, neonpro_patient_ref(CAST(%(patient)s AS uuid)), %(status)s, %(risk)s, "
    "CAST(%(ip)s AS inet), %(ua)s, %(session)s, %(request)s, CAST(%(details)s AS jsonb))")
CLINIC_ZONE = "SELECT clinics.timezone \nFROM clinics \nWHERE clinics.id = %(id_1)s::UUID"
LOCK_PROFESSIONAL = (
    "SELECT professionals.is_active, professionals.work_start_time, "
    "professionals.work_end_time, professionals.break_start_time, "
    "professionals.break_end_time, professionals.can_work_weekends, "
    "professionals.max_daily_appointments, professionals.appointment_buffer_minutes, "
    "professionals.license_expiry_date \nFROM professionals \n"
    "WHERE professionals.clinic_id = %(clinic_id_1)s::UUID "
    "AND professionals.id = %(id_1)s::UUID FOR UPDATE")
BLOCKING = (
    "SELECT appointments.start_time, appointments.end_time \nFROM appointments \n"
    "WHERE appointments.clinic_id = %(clinic_id_1)s::UUID "
    "AND appointments.professional_id = %(professional_id_1)s::UUID "
    "AND appointments.status IN (%(status_1_1)s::VARCHAR, %(status_1_2)s::VARCHAR, "
    "%(status_1_3)s::VARCHAR, %(status_1_4)s::VARCHAR) "
    "AND appointments.start_time < %(start_time_1)s::TIMESTAMP WITH TIME ZONE "
    "AND appointments.end_time > %(end_time_1)s::TIMESTAMP WITH TIME ZONE")
BLOCKING_STATUSES = ("completed", "in_progress", "scheduled", "confirmed")
_INSERTED = (
    "clinic_id", "id", "patient_id", "professional_id", "start_time", "end_time", "time_zone",
    "appointment_type", "status", "priority", "follow_up_required", "patient_confirmed",
    "whatsapp_reminder_sent", "sms_reminder_sent", "email_reminder_sent", "reminder_count",
    "no_show_risk_factors", "reschedule_count", "payment_status", "insurance_covered",
    "prior_auth_required", "prior_auth_status", "created_by", "updated_by", "version",
)
_CASTS = {"clinic_id": "UUID", "id": "UUID", "patient_id": "UUID", "professional_id": "UUID",
          "start_time": "TIMESTAMP WITH TIME ZONE", "end_time": "TIMESTAMP WITH TIME ZONE",
          "time_zone": "VARCHAR", "appointment_type": "VARCHAR", "status": "VARCHAR",
          "priority": "VARCHAR", "reminder_count": "INTEGER", "no_show_risk_factors": "JSONB",
          "reschedule_count": "INTEGER", "payment_status": "VARCHAR",
          "prior_auth_status": "VARCHAR", "created_by": "UUID", "updated_by": "UUID",
          "version": "INTEGER"}
_RETURNED = (
    "id", "clinic_id", "patient_id", "professional_id", "service_type_id", "start_time",
    "end_time", "time_zone", "appointment_type", "status", "priority", "room_id", "location",
    "chief_complaint", "tuss_code", "tuss_procedure_name", "notes", "follow_up_required",
    "follow_up_date", "follow_up_instructions", "patient_confirmed", "patient_confirmed_at",
    "reminder_sent_at", "confirmation_sent_at", "whatsapp_reminder_sent",
    "sms_reminder_sent", "email_reminder_sent", "reminder_count", "no_show_actual_outcome",
    "check_in_time", "check_out_time", "actual_start_time", "actual_end_time",
    "waiting_minutes", "cancelled_at", "cancelled_by", "cancellation_reason",
    "cancellation_fee", "rescheduled_from_id", "reschedule_count", "last_rescheduled_at",
    "rescheduling_reason", "estimated_cost", "actual_cost", "copay_amount", "payment_status",
    "insurance_covered", "prior_auth_required", "prior_auth_number", "prior_auth_status",
    "patient_satisfaction_score", "patient_feedback", "created_by", "updated_by",
    "created_at", "updated_at", "version", "clinical_notes_encrypted",
    "internal_notes_encrypted",
)
_SCORES = (("score", "no_show_risk_score"), ("model_version", "no_show_model_version"),
           ("factors", "no_show_risk_factors"), ("predicted_at", "no_show_predicted_at"))
# neonpro's select list: the written row, with the four score columns of the join where the
# response model has them (after reminder_count)
_SELECTED = [f"written.{c}" for c in _RETURNED]
_SELECTED.insert(_RETURNED.index("no_show_actual_outcome"),
                 ", ".join(f"appointment_risk_scores.{a} AS {b}" for a, b in _SCORES))
INSERT_APPOINTMENT = (
    "WITH written AS \n(INSERT INTO appointments (" + ", ".join(_INSERTED) + ") VALUES ("
    + ", ".join(f"%({c})s::{_CASTS[c]}" if c in _CASTS else f"%({c})s" for c in _INSERTED)
    + ") RETURNING " + ", ".join(f"appointments.{c}" for c in _RETURNED) + ")\n SELECT "
    + ", ".join(_SELECTED) + " \nFROM written LEFT OUTER JOIN appointment_risk_scores ON "
    "appointment_risk_scores.clinic_id = written.clinic_id AND "
    "appointment_risk_scores.appointment_id = written.id")
PRE_COMMIT = ("INSERT INTO commit_tokens (clinic_id, token) SELECT %(clinic)s, %(token)s "
              "WHERE pg_current_xact_id_if_assigned() IS NOT NULL")


class Refused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")  # ciphertext, not decrypted
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def _answer(row: dict[str, Any], status: int = 200) -> Response:
    body = json.dumps(row, default=_json_value, ensure_ascii=False, separators=(",", ":"))
    return Response(body, status_code=status, media_type="application/json")


class Baseline:
    def __init__(self) -> None:
        self.secret = os.environ["BASELINE_JWT_SECRET"].encode()
        self.issuer = os.environ.get("BASELINE_JWT_ISSUER", "neonpro")
        options = "-c statement_timeout=15000 -c TimeZone=UTC"
        size = int(os.environ.get("BASELINE_POOL_SIZE", "20"))
        grow = int(os.environ.get("BASELINE_POOL_OVERFLOW", "10"))
        common = {"application_name": "neonpro-baseline", "options": options}
        self.app_pool = AsyncConnectionPool(os.environ["BASELINE_APP_URL"], min_size=size,
                                            max_size=size + grow, kwargs=common, open=False)
        self.service_pool = AsyncConnectionPool(
            os.environ["BASELINE_SERVICE_URL"], min_size=2, max_size=size + grow,
            kwargs={**common, "autocommit": True}, open=False)

    # -------------------------------------------------------------- the caller
    def decode(self, request: Request) -> tuple[uuid.UUID, uuid.UUID, str, str]:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Refused(401, "a bearer token is required")
        try:
            claims = jwt.decode(token, self.secret, algorithms=["HS256"], issuer=self.issuer,
                                options={"require": ["exp", "sub", "iss", "jti"]})
            fields = [claims["sub"], claims["clinic_id"], claims["role"], claims["jti"]]
            if not all(isinstance(f, str) for f in fields):
                raise TypeError("claims must be strings")  # noqa: TRY301
            clinic = uuid.UUID(claims["clinic_id"])
            if clinic.int == 0 or claims["role"] not in ROLES:
                raise ValueError("bad clinic or role")  # noqa: TRY301
            return uuid.UUID(claims["sub"]), clinic, claims["role"], claims["jti"]
        except (jwt.PyJWTError, KeyError, ValueError, TypeError, AttributeError):
            raise Refused(401, "invalid or expired token") from None

    async def caller(self, request: Request) -> tuple[uuid.UUID, uuid.UUID, str, str]:
        user, clinic, role, jti = self.decode(request)
        async with self.service_pool.connection() as conn:
            cur = await conn.execute(SESSION_LIVE, {"token": jti, "user": user,
                                                    "clinic": clinic, "role": role})
            live = await cur.fetchone()
        if not (live and live[0]):
            raise Refused(401, "invalid or expired token")
        if role not in STAFF:
            raise Refused(403, f"the {role} role may not do this")
        return user, clinic, role, jti

    @staticmethod
    def context(request: Request, who: tuple[uuid.UUID, uuid.UUID, str, str]) -> dict[str, str]:
        user, clinic, role, jti = who
        return {"clinic_id": str(clinic), "actor_id": str(user), "actor_role": role,
                "request_id": uuid.uuid4().hex,
                "ip": request.client.host if request.client else "",
                "user_agent": request.headers.get("user-agent", "")[:500],
                "session_id": jti, "statement_timeout": str(STATEMENT_TIMEOUT_MS)}

    # -------------------------------------------------------------- endpoints
    async def get_patient(self, request: Request) -> Response:
        who = await self.caller(request)
        try:
            patient = uuid.UUID(request.path_params["patient_id"])
        except ValueError:
            raise Refused(422, "patient_id is not a UUID") from None
        ctx = self.context(request, who)
        async with self.app_pool.connection() as conn:  # BEGIN ... COMMIT on leaving
            await conn.execute(SET_CONTEXT_BOUNDED, ctx)
            cur = await conn.execute(SELECT_PATIENT, {"b_clinic": who[1], "b_id": patient})
            row = await cur.fetchone()
            if row is None:
                raise Refused(404, "patient not found")
            await conn.execute(AUDIT_INSERT, {
                "clinic": who[1], "actor": who[0], "role": who[2], "action": "VIEW",
                "rtype": "patient", "rid": str(patient), "patient": str(patient),
                "status": "success", "risk": "low", "ip": ctx["ip"] or None,
                "ua": ctx["user_agent"] or None, "session": who[3],
                "request": ctx["request_id"], "details": "{}"})
        return _answer(dict(zip(PATIENT_COLUMNS, row, strict=True)))

    async def book(self, request: Request) -> Response:
        who = await self.caller(request)
        user, clinic = who[0], who[1]
        try:
            body = await request.json()
            patient = uuid.UUID(body["patient_id"])
            professional = uuid.UUID(body["professional_id"])
            start = datetime.fromisoformat(body["start_time"])
            end = datetime.fromisoformat(body["end_time"])
            if start.tzinfo is None or end.tzinfo is None or end <= start:
                raise ValueError("bad window")  # noqa: TRY301
        except (ValueError, KeyError, TypeError):
            raise Refused(422, "invalid booking") from None
        ctx = self.context(request, who)
        new_id = uuid.uuid4()
        async with self.app_pool.connection() as conn:
            await conn.execute(SET_CONTEXT_BOUNDED, ctx)
            zone = ZoneInfo((await (await conn.execute(
                CLINIC_ZONE, {"id_1": clinic})).fetchone() or ("UTC",))[0])
            prof = await (await conn.execute(LOCK_PROFESSIONAL, {
                "clinic_id_1": clinic, "id_1": professional})).fetchone()
            if prof is None:
                raise Refused(404, "professional not found")
            local_start, local_end = start.astimezone(zone), end.astimezone(zone)
            day = datetime.combine(local_start.date(), time(0), zone)
            cur = await conn.execute(BLOCKING, {
                "clinic_id_1": clinic, "professional_id_1": professional,
                **{f"status_1_{i}": s for i, s in enumerate(BLOCKING_STATUSES, 1)},
                "start_time_1": day + timedelta(days=1), "end_time_1": day})
            _rules(prof, local_start, local_end, start, end, await cur.fetchall())
            params: dict[str, Any] = {
                "clinic_id": clinic, "id": new_id, "patient_id": patient,
                "professional_id": professional, "start_time": start, "end_time": end,
                "time_zone": zone.key, "appointment_type": "in_person", "status": "scheduled",
                "priority": "normal", "follow_up_required": False, "patient_confirmed": False,
                "whatsapp_reminder_sent": False, "sms_reminder_sent": False,
                "email_reminder_sent": False, "reminder_count": 0,
                "no_show_risk_factors": "{}", "reschedule_count": 0,
                "payment_status": "pending", "insurance_covered": False,
                "prior_auth_required": False, "prior_auth_status": "not_required",
                "created_by": user, "updated_by": user, "version": 1}
            try:
                cur = await conn.execute(INSERT_APPOINTMENT, params)
            except psycopg.errors.ExclusionViolation:
                raise Refused(409, "the slot is taken") from None
            except psycopg.errors.ForeignKeyViolation:
                raise Refused(404, "patient not found") from None
            row = await cur.fetchone()
            names = [d.name for d in cur.description or []]
            await conn.execute(PRE_COMMIT, {"clinic": clinic, "token": uuid.uuid4()})
        return _answer(dict(zip(names, row or (), strict=True)), 201)


def _rules(prof: tuple[Any, ...], local_start: datetime, local_end: datetime,
           start: datetime, end: datetime, taken: list[tuple[datetime, datetime]]) -> None:
    """The scheduling rules neonpro checks on what it read (services/scheduling.py)."""
    (active, work_start, work_end, break_start, break_end, weekends, daily_max, buffer,
     licence) = prof
    if not active:
        raise Refused(409, "professional inactive")
    if licence is not None and licence < local_start.date():
        raise Refused(409, "licence expired")
    if local_start.weekday() >= 5 and not weekends:
        raise Refused(409, "no weekends")
    if local_start.date() != local_end.date() or not (
            work_start <= local_start.time() and local_end.time() <= work_end):
        raise Refused(409, "outside working hours")
    if break_start and break_end and (local_start.time() < break_end
                                      and local_end.time() > break_start):
        raise Refused(409, "during the break")
    if daily_max is not None and len(taken) >= daily_max:
        raise Refused(409, "daily maximum reached")
    gap = timedelta(minutes=buffer or 0)
    if any(s - gap < end and e + gap > start for s, e in taken):
        raise Refused(409, "overlaps another appointment")


def create_app() -> Starlette:
    base = Baseline()

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await base.app_pool.open(wait=True)
        await base.service_pool.open(wait=True)
        try:
            yield
        finally:
            await base.app_pool.close()
            await base.service_pool.close()

    async def refused(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Refused)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)

    async def ready(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[
        Route("/patients/{patient_id}", base.get_patient, methods=["GET"]),
        Route("/appointments", base.book, methods=["POST"]),
        Route("/health/ready", ready, methods=["GET"]),
    ], exception_handlers={Refused: refused}, lifespan=lifespan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
