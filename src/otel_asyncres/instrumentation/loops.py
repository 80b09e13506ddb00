"""Which event loop classes exist, and where a hook must go so each sees it.

Hooks go on classes, not instances, so loops created before ``instrument()``
are covered as well as later ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
from typing import Any

_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class made by a class statement
_IMMUTABLETYPE = 1 << 8  # Py_TPFLAGS_IMMUTABLETYPE (3.10+)


def loop_classes() -> list[type]:
    """Every event loop class that is loaded, uvloop's included when installed."""
    if importlib.util.find_spec("uvloop") is not None:
        with contextlib.suppress(ImportError):
            import uvloop  # noqa: F401  (imported so its Loop class can be hooked)
    found: list[type] = []
    pending: list[type] = [asyncio.AbstractEventLoop]
    while pending:
        cls = pending.pop()
        sub: type
        for sub in cls.__subclasses__():
            if sub not in found:
                found.append(sub)
                pending.append(sub)
    return found


def definitions(classes: list[type], name: str) -> list[tuple[type, Any]]:
    """Where to patch ``name`` so that every class in ``classes`` sees the hook,
    with what each place resolves ``name`` to now.

    A method is patched on the class that defines it; an extension type
    (uvloop's Cython base) cannot be patched, so its Python subclasses are."""
    found: dict[type, Any] = {}
    for cls in classes:
        for owner in cls.__mro__:
            if name in vars(owner):
                target = owner if patchable(owner) else cls
                if target not in found:
                    found[target] = getattr(target, name)
                break
    return list(found.items())


def patchable(cls: type) -> bool:
    flags = cls.__flags__
    return bool(flags & _HEAPTYPE) and not flags & _IMMUTABLETYPE
