"""The composition root: one place that builds settings, the database and (later) services.

The API and the CLI both build a :class:`Container`; tests build one with their
own settings. Nothing is created until first asked for.
"""

from __future__ import annotations

from functools import cached_property

from neonpro.adapters.db.database import Database
from neonpro.config import Settings, get_settings


class Container:
    """Lazily wired application objects."""

    def __init__(
        self, settings: Settings | None = None, *, database_url: str | None = None
    ) -> None:
        self._settings = settings
        self._database_url = database_url

    @cached_property
    def settings(self) -> Settings:
        return self._settings if self._settings is not None else get_settings()

    @cached_property
    def database(self) -> Database:
        return Database(self.settings, url=self._database_url)

    def close(self) -> None:
        """Release pools and stop an embedded server this process started."""
        if "database" in self.__dict__:
            self.database.close()
