"""The fake unit of work offers every repository of the ``UnitOfWork`` protocol, each with
every method the protocol names and the same parameters: a repository or a method added
to the protocol fails here until the fake has it too."""

from __future__ import annotations

import inspect
import typing
import uuid

import pytest

from neonpro.domain import ports
from neonpro.domain.actors import Actor
from tests.unit.fakes import FakeUnitOfWork


def _repositories() -> dict[str, type]:
    out = {}
    for name, member in vars(ports.UnitOfWork).items():
        if isinstance(member, property) and member.fget is not None:
            out[name] = typing.get_type_hints(member.fget, vars(ports))["return"]
    return out


REPOSITORIES = _repositories()


def _methods(protocol: type) -> list[str]:
    return [n for n, v in vars(protocol).items() if not n.startswith("_") and callable(v)]


def _parameters(function: object) -> list[tuple[str, object, bool]]:
    signature = inspect.signature(function)  # type: ignore[arg-type]
    return [(p.name, p.kind, p.default is inspect.Parameter.empty)
            for p in signature.parameters.values() if p.name != "self"]


def test_the_protocol_lists_the_lgpd_repositories() -> None:
    assert {"incidents", "subject_requests", "disclosures", "consents", "trail",
            "records"} <= set(REPOSITORIES)


@pytest.mark.parametrize("name", sorted(REPOSITORIES))
def test_every_repository_method_is_faked_with_the_protocols_parameters(name: str) -> None:
    fake = getattr(FakeUnitOfWork(Actor(uuid.uuid4(), "admin"), uuid.uuid4()), name)
    protocol = REPOSITORIES[name]
    for method in _methods(protocol):
        assert hasattr(fake, method), f"{type(fake).__name__} lacks {method}"
        expected = _parameters(getattr(protocol, method))
        assert _parameters(getattr(fake, method)) == expected, f"{name}.{method}"
