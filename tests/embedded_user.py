"""A process using the embedded PostgreSQL the way a CLI command or ``./dev run`` does
(``Database`` without ``NEONPRO_DATABASE_URL``), driven line by line on stdin:

* ``query``: run ``SELECT 1`` on the embedded server, print ``ok`` (or ``error <kind>``);
* ``exit``: close the database (leaving the server) and exit.

It prints the server's port once started; its answers start with ``>> `` (log lines
may come between). Used by tests/integration/test_embedded_shared.py
as a real separate process (``python -m tests.embedded_user BASE_DIR``)."""

from __future__ import annotations

import sys
from pathlib import Path

from sqlalchemy import make_url, text
from sqlalchemy.exc import SQLAlchemyError

from neonpro.adapters.db.database import Database
from neonpro.config import Environment, Settings


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(base: str) -> None:
    settings = Settings(environment=Environment.TEST, embedded_dir=Path(base),
                        _env_file=None)  # type: ignore[call-arg]
    db = Database(settings)
    _say(f">> port {make_url(db.owner_url).port}")
    for line in sys.stdin:
        command = line.strip()
        if command == "query":
            try:
                with db.engine().connect() as conn:
                    conn.execute(text("SELECT 1"))
                _say(">> ok")
            except SQLAlchemyError as exc:
                _say(f">> error {type(exc).__name__}")
        elif command == "exit":
            break
    db.close()
    _say(">> closed")


if __name__ == "__main__":
    main(sys.argv[1])
