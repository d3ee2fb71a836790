"""What the audit trail's SQL is about: audited tables, chains, shared fragments."""

from __future__ import annotations

# Tables whose every INSERT, UPDATE and DELETE is recorded by a trigger, whoever runs it.
AUDITED_TABLES = (
    "patients", "appointments", "consent_records", "disclosures", "data_subject_requests",
    "professionals", "staff_users", "clinic_memberships", "security_incidents",
)
# Columns whose change alone is bookkeeping, not a change of personal data.
IGNORED_FIELDS = ("updated_at", "updated_by", "version", "search_name")
SEAL_COLUMNS = ("seq", "prev_hash", "hash", "key_id")
# the chained tables (each clinic has one chain in each; audit_text.LEDGER_SPECS)
CHAINS = ("audit_events", "erasure_ledger", "consent_records", "disclosures")
# what the law may require removing from a consent row, and why (erasure, retention)
EVIDENCE_REMOVED = ("erasure", "retention")
LP = "neonpro_lp"
NIL = "'00000000-0000-0000-0000-000000000000'::uuid"
# the HMAC of the patient-ref key (owner only): patient refs, bound contexts, feed channels
HMAC = "sha256(k.outer_pad || sha256(k.inner_pad || convert_to({message}, 'UTF8')))"
KEY = "FROM audit_ref_keys k WHERE k.id = 1"
CONTEXT_FIELDS = ("clinic_id", "actor_id", "actor_role", "request_id", "ip", "user_agent",
                  "session_id")

