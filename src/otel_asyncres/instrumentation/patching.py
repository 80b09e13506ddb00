"""Reversible patching: ``uninstrument()`` must leave classes exactly as found.

An attribute is restored to the very object that was there, and an attribute
that a class only inherited is deleted again rather than pinned to the parent's
value, so later changes to the parent still show through.
"""

from __future__ import annotations

from typing import Any

_MISSING = object()


class Patcher:
    """Records every replacement so that all of them can be undone."""

    def __init__(self) -> None:
        self._saved: list[tuple[Any, str, Any]] = []

    def replace(self, owner: Any, name: str, value: Any) -> Any:
        """Set ``owner.name = value``; return what ``owner.name`` resolved to
        before (None if nothing)."""
        previous = getattr(owner, name, None)
        own = vars(owner).get(name, _MISSING) if hasattr(owner, "__dict__") else previous
        self._saved.append((owner, name, own))
        setattr(owner, name, value)
        return previous

    def is_patched(self, owner: Any, name: str) -> bool:
        return any(o is owner and n == name for o, n, _ in self._saved)

    def restore_all(self) -> None:
        """Undo every replacement, newest first."""
        while self._saved:
            owner, name, own = self._saved.pop()
            if own is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, own)
