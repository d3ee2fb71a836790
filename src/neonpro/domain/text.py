"""Text folding shared by the search column and search queries."""

from __future__ import annotations

_LOWER = "áàâãäåéèêëíìîïóòôõöúùûüçñýÿ"
_UPPER = "ÁÀÂÃÄÅÉÈÊËÍÌÎÏÓÒÔÕÖÚÙÛÜÇÑÝŸ"
_PLAIN = "aaaaaaeeeeiiiiooooouuuucnyy"
FOLD_FROM = _LOWER + _UPPER
FOLD_TO = _PLAIN + _PLAIN
_TABLE = str.maketrans(FOLD_FROM, FOLD_TO)


def fold_for_search(value: str) -> str:
    """Lower-case and strip Portuguese accents, exactly as ``patients.search_name`` does.

    Upper-case accented letters are mapped too: ``lower()`` in a C-locale database
    leaves them alone.
    """
    return value.lower().translate(_TABLE)


def like_escape(value: str) -> str:
    """Escape LIKE wildcards so user input matches literally (ESCAPE '\\')."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
