"""Where values stand: per encrypted column, how many values under each key id."""


from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from neonpro.domain.actors import Actor
from neonpro.domain.ports_keys import EncryptedColumn, KeyUpkeep, show_key_id
from neonpro.services.keys.common import ACTOR, _by_table


@dataclass(frozen=True)
class ColumnStatus:
    table: str
    column: str
    by_key: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.by_key.values())


@dataclass(frozen=True)
class KeyStatus:
    """How many values of each encrypted column are under each key id."""

    active_key_id: str
    key_ids: tuple[str, ...]  # the ids this process's key ring holds
    columns: tuple[ColumnStatus, ...]

    @property
    def by_key(self) -> dict[str, int]:
        """Values per key id over every column; every key of the ring appears (maybe 0)."""
        totals = dict.fromkeys(self.key_ids, 0)
        for c in self.columns:
            for kid, n in c.by_key.items():
                totals[kid] = totals.get(kid, 0) + n
        return dict(sorted(totals.items()))

    @property
    def total(self) -> int:
        return sum(c.total for c in self.columns)

    @property
    def remaining(self) -> int:
        """Values not yet under the active key."""
        return sum(n for kid, n in self.by_key.items() if kid != self.active_key_id)

    @property
    def unknown(self) -> list[tuple[str, str, str]]:
        """(table, column, key id) for values under a key id this key ring does not hold."""
        return [
            (c.table, c.column, kid)
            for c in self.columns
            for kid, n in sorted(c.by_key.items())
            if n and kid not in self.key_ids
        ]

    def count(self, key_id: str) -> int:
        return self.by_key.get(key_id, 0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "active_key_id": self.active_key_id,
            "key_ids": list(self.key_ids),
            "by_key": self.by_key,
            "total": self.total,
            "remaining": self.remaining,
            "unknown": [
                {"table": t, "column": c, "key_id": k} for t, c, k in self.unknown
            ],
            "columns": [
                {"table": c.table, "column": c.column, "by_key": dict(sorted(c.by_key.items()))}
                for c in self.columns
            ],
        }


def key_status(
    keys: KeyUpkeep,
    *,
    actor: Actor = ACTOR,
    columns: Sequence[EncryptedColumn] | None = None,
) -> KeyStatus:
    """Count values per key id in every encrypted column (one scan per table, in SQL)."""
    ring = keys.keyring
    if columns is None:
        columns = keys.key_store.encrypted_columns
    counts: dict[tuple[str, str], dict[str, int]] = {
        (c.table, c.column): {} for c in columns
    }
    with keys.key_store.transaction(actor) as batch:
        for table, cols in _by_table(columns).items():
            for column, kid, n in batch.key_counts(table, cols):
                per = counts[(table, column)]
                name = show_key_id(kid)
                per[name] = per.get(name, 0) + n
    return KeyStatus(
        active_key_id=ring.active_id,
        key_ids=tuple(sorted(ring.keys)),
        columns=tuple(ColumnStatus(c.table, c.column, counts[(c.table, c.column)])
                      for c in columns),
    )
