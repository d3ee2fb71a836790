"""Every error class the code defines is a DomainError (answered once: problem+json over
HTTP, one line and an exit code in the CLI), but for the few listed here with their reason."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import neonpro
from neonpro.domain.errors import DomainError

# outside the hierarchy on purpose: infrastructure outcomes, answered 503 in one place
# (entrypoints/api/problems.py), never a decision of a service
OUTSIDE: dict[str, str] = {
    "neonpro.adapters.db.deadline.RequestTimedOut": "the request's deadline passed: 503",
    "neonpro.adapters.db.deadline.CommitOutcomeUnknown":
        "the database could not say whether a COMMIT happened: 503 commit_outcome_unknown",
    # the installation itself is broken, not a request: the CLI maps each to one line
    # (entrypoints/cli/_common.py), the API never starts with it
    "neonpro.adapters.db.embedded.EmbeddedError": "the local PostgreSQL cannot start",
    "neonpro.adapters.crypto.keyring.KeyConfigError": "the key file is missing or invalid",
    # a development tool's: the machine has no Citus (its command prints it, tests skip)
    "neonpro.devtools.citus.CitusUnavailable": "no local Citus cluster can run here",
    # stored data that does not decrypt: corruption or a missing key, an operator's alarm
    # (500 internal_error, logged without the value), never a client's mistake
    "neonpro.domain.ports_keys.UnreadableValue": "a stored value does not decrypt",
    "neonpro.adapters.crypto.keyring.DecryptionError": "the AES-GCM form of UnreadableValue",
}


def error_classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(neonpro.__path__, "neonpro."):
        if ".migrations." in info.name:
            continue
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and issubclass(cls, BaseException):
                found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return found


def test_every_error_is_a_domain_error_or_named_here() -> None:
    classes = error_classes()
    outside = {name for name, cls in classes.items() if not issubclass(cls, DomainError)}
    assert outside == set(OUTSIDE)
