"""Everything held about one patient, and its renderings: JSON and a FHIR R4 Bundle.

Read side of LGPD Art. 18 I (confirmation), II (access) and V (portability). Runs inside
an open tenant unit of work: row-level security limits every query to its clinic, the
patient's and appointments' encrypted fields are decrypted by their repositories.

What is collected (one patient, one clinic):

* ``patients``: the record, decrypted (a soft-deleted patient is not found);
* ``appointments``: every one, with clinical, internal and general notes;
* ``professionals``: those of the appointments and the primary professional (their
  professional identity only: name, council registration, specialty; not their contacts);
* ``consent_records``: the full ledger history, superseded rows included, and
  ``consent_state``: the state of each purpose (the latest decision wins,
  ``neonpro_consent_state``), the same the consent gate and confirmation read;
* ``disclosures``: the sharing log;
* ``data_subject_requests``: the patient's requests and their outcome;
* ``erasure_ledger``: erasure decisions about the patient (per category: action and legal
  reference), e.g. for an anonymized patient;
* ``audit_events``: events whose ``patient_ref`` is the patient's (action, time, actor
  role, resource, status, risk, details; never hashes, addresses or staff identities).

The JSON document holds all of it. The FHIR Bundle (type ``collection``) holds what FHIR
models: Patient, Practitioner, Appointment, Consent, plus AllergyIntolerance, Condition,
MedicationStatement and a blood-group Observation for the patient's clinical lists.

In parts: :mod:`.formats` (names and media types), :mod:`.collect` (the reads and the
JSON document), :mod:`.fhir` (the Bundle) and :mod:`.render`.
"""

from __future__ import annotations

from neonpro.queries.export.collect import (
    AUDIT_EVENTS,
    DISCLOSURES,
    ERASURES,
    MONEY,
    PROFESSIONALS,
    appointments_of,
    collect,
    holdings,
    to_json,
)
from neonpro.queries.export.fhir import (
    APPOINTMENT_STATUS,
    CNS_SYSTEM,
    CONSENT_SCOPE,
    CONSENT_STATUS,
    CPF_SYSTEM,
    HL7,
    LGPD_URI,
    MARITAL_STATUS,
    NEONPRO,
    NOTE_LABELS,
    PRIVACY_SCOPE,
    PURPOSE_OF_USE,
    fhir_appointment,
    fhir_bundle_json,
    fhir_clinical_lists,
    fhir_consent,
    fhir_patient,
    fhir_practitioner,
    to_fhir,
    to_fhir_bundle,
)
from neonpro.queries.export.formats import FORMAT, MEDIA_TYPES, ExportFormat, FhirJson
from neonpro.queries.export.render import render

__all__ = [
    "APPOINTMENT_STATUS", "AUDIT_EVENTS", "CNS_SYSTEM", "CONSENT_SCOPE", "CONSENT_STATUS",
    "CPF_SYSTEM", "DISCLOSURES", "ERASURES", "FORMAT", "HL7", "LGPD_URI", "MARITAL_STATUS",
    "MEDIA_TYPES", "MONEY", "NEONPRO", "NOTE_LABELS", "PRIVACY_SCOPE", "PROFESSIONALS",
    "PURPOSE_OF_USE", "ExportFormat", "FhirJson", "appointments_of", "collect",
    "fhir_appointment", "fhir_bundle_json", "fhir_clinical_lists", "fhir_consent",
    "fhir_patient", "fhir_practitioner", "holdings", "render", "to_fhir", "to_fhir_bundle",
    "to_json",
]
