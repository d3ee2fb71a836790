"""Backups: PostgreSQL's own tools (pg_dump, pg_restore, pgBackRest) driven and verified."""
