"""The sharding-ready key rules hold for every table, and the walker catches violations."""

from __future__ import annotations

import uuid

from sqlalchemy import Column, ForeignKeyConstraint, MetaData, Table, UniqueConstraint
from sqlalchemy.dialects.postgresql import UUID

from neonpro.adapters.db.models import Base
from neonpro.adapters.db.schema_rules import metadata_problems, table_problems


def test_every_table_of_the_schema_is_sharding_ready() -> None:
    assert metadata_problems(Base.metadata) == []


def test_every_domain_table_exists_with_its_name() -> None:
    expected = {
        "clinics", "staff_users", "clinic_memberships", "professionals", "service_types",
        "patients", "appointments", "consent_records", "audit_events",
        "data_subject_requests", "retention_policies", "disclosures", "security_incidents",
    }
    assert expected <= set(Base.metadata.tables)


def _bad_metadata() -> MetaData:
    md = MetaData()
    Table("clinics", md, Column("id", UUID, primary_key=True), info={"scope": "clinic"})
    Table(
        "parents", md,
        Column("clinic_id", UUID, primary_key=True),
        Column("id", UUID, primary_key=True, default=uuid.uuid4),
        info={"scope": "tenant"},
    )
    Table(
        "children", md,
        Column("id", UUID, primary_key=True),  # pk without clinic_id
        Column("clinic_id", UUID, nullable=False),
        Column("parent_id", UUID, nullable=True),
        Column("code", UUID),
        UniqueConstraint("code", name="uq_code"),  # unique without clinic_id
        ForeignKeyConstraint(["parent_id"], ["parents.id"], name="fk_parent"),  # no clinic_id
        info={"scope": "tenant"},
    )
    Table(
        "set_null_wrong", md,
        Column("clinic_id", UUID, primary_key=True),
        Column("id", UUID, primary_key=True),
        Column("parent_id", UUID, nullable=True),
        ForeignKeyConstraint(
            ["clinic_id", "parent_id"], ["parents.clinic_id", "parents.id"],
            ondelete="SET NULL", name="fk_nulls_clinic",  # would null clinic_id too
        ),
        info={"scope": "tenant"},
    )
    Table("unscoped", md, Column("id", UUID, primary_key=True))
    return md


def test_the_walker_reports_each_kind_of_violation() -> None:
    md = _bad_metadata()
    problems = "\n".join(metadata_problems(md))
    assert "children: primary key ['id'] does not start with clinic_id" in problems
    assert "children.uq_code: unique without clinic_id" in problems
    assert "children.fk_parent: foreign key to tenant table parents lacks clinic_id" in problems
    assert "set_null_wrong.fk_nulls_clinic: nullable reference needs ON DELETE SET NULL" in problems
    assert "unscoped: no scope" in problems
    assert table_problems(md.tables["parents"]) == []
