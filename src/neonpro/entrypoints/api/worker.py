"""One worker process of ``neonpro serve --workers N`` (N > 1): uvicorn imports
:func:`app` in each process it starts.

A worker only answers requests. What must run once per server runs in the ``neonpro
serve`` process that supervises the workers: migrations, the health check, the audit
sealer and the checkpointer (a chain sealed by two processes would still be right, as
sealing locks the chain, but twice the work and twice the checkpoints). Each worker has its
own pools and its own change-feed LISTEN connection, which fans out to its own streams.
The supervisor passes the database it resolved (the embedded server it started, say) in
``NEONPRO_DATABASE_URL``, so no worker starts a server of its own.
"""

from __future__ import annotations

from fastapi import FastAPI

from neonpro.bootstrap import Container
from neonpro.config import Settings
from neonpro.entrypoints.api.app import create_app, settle_heap
from neonpro.logs import configure_logging


def app() -> FastAPI:
    """The API of one worker process, over a container of its own, closed at shutdown
    (its pools; the supervisor seals the audit trail)."""
    settings = Settings()
    configure_logging(settings.log_level)
    box = Container(settings)
    application = create_app(box)

    def close() -> None:
        box.close(seal=False)

    application.add_event_handler("shutdown", close)
    settle_heap()
    return application
