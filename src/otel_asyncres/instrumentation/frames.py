"""Where in user code something happened.

DESIGN.md §2 wants ``code.*`` attributes that point at user code, never at
asyncio or at this package, so a location is the first frame, walking outwards,
whose file lies outside those directories. Locations are interned per
(code object, line): a server spawns from the same few lines millions of times.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
from types import CodeType, FrameType, FunctionType
from typing import Any

from ..model import Location


def _loop_implementation_dirs() -> tuple[str, ...]:
    """asyncio's directory, and uvloop's where installed (its Cython code
    reports relative file names such as ``uvloop/loop.pyx``)."""
    dirs = [os.path.dirname(asyncio.__file__) + os.sep]
    spec = importlib.util.find_spec("uvloop")
    if spec is not None:
        dirs.append("uvloop" + os.sep)
        dirs.extend(os.path.join(p, "") for p in spec.submodule_search_locations or ())
    return tuple(dirs)


_RUNTIME_DIRS = _loop_implementation_dirs()
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_SKIPPED = (*_RUNTIME_DIRS, _PACKAGE_DIR)

_CACHE_LIMIT = 65536
_locations: dict[tuple[CodeType, int], Location] = {}


def is_internal_file(filename: str) -> bool:
    """True for asyncio's and this package's own source files."""
    return filename.startswith(_SKIPPED)


def is_runtime_file(filename: str) -> bool:
    """True for the event loop's own code: asyncio, uvloop."""
    return filename.startswith(_RUNTIME_DIRS)


_runtime_codes: dict[CodeType, bool] = {}


def is_runtime_callback(callback: Any) -> bool:
    """Whether a callback is asyncio's own code, or this package's hook on
    it (through partials and bound methods), cached per code object."""
    func = getattr(callback, "func", callback)
    func = getattr(func, "__func__", func)
    code = getattr(func, "__code__", None)
    if code is None:
        return False
    known = _runtime_codes.get(code)
    if known is None:
        if len(_runtime_codes) >= _CACHE_LIMIT:
            _runtime_codes.clear()
        known = _runtime_codes[code] = is_internal_file(code.co_filename)
    return known


def location_of(frame: FrameType) -> Location:
    """The (interned) location a frame is currently at."""
    code = frame.f_code
    key = (code, frame.f_lineno)
    loc = _locations.get(key)
    if loc is None:
        if len(_locations) >= _CACHE_LIMIT:
            _locations.clear()
        name = getattr(code, "co_qualname", code.co_name)
        loc = _locations[key] = Location(code.co_filename, frame.f_lineno, name)
    return loc


def user_location() -> Location | None:
    """The innermost frame of the caller's stack that belongs to user code."""
    frame: FrameType | None = sys._getframe(OWN_FRAME)
    while frame is not None:
        if not frame.f_code.co_filename.startswith(_SKIPPED):
            return location_of(frame)
        frame = frame.f_back
    return None


#: Frames inside ``create_task`` (a task factory the program set, say) are
#: machinery of the spawn, not where it was asked for.
_CREATE_TASK = asyncio.BaseEventLoop.create_task.__code__


def spawn_location(loop: Any, skip: int = 0) -> Location | None:
    """Where in user code a task is being spawned (``skip``: how many frames
    above the caller's are known to be this package's own).

    Each frame looked at costs its creation (3.11+ makes frame objects on
    demand, each one more allocation towards the next garbage collection),
    so the walk starts above this package's own frames, and only a loop
    with a task factory (the program's own code, inside ``create_task``)
    needs the spawn's frames skipped up to the loop's ``create_task``."""
    try:
        frame: FrameType | None = sys._getframe(OWN_FRAME * (1 + skip))
    except ValueError:  # a shallower stack than the caller said
        frame = sys._getframe(OWN_FRAME)
    if loop is None or _task_factory(loop) is not None:
        probe = frame
        for _ in range(16):
            if probe is None:
                break
            if probe.f_code is _CREATE_TASK:
                frame = probe.f_back
                break
            probe = probe.f_back
    while frame is not None:
        if not frame.f_code.co_filename.startswith(_SKIPPED):
            return location_of(frame)
        frame = frame.f_back
    return None


def _task_factory(loop: Any) -> Any:
    try:
        return loop.get_task_factory()
    except Exception:
        return True  # unknown: look for create_task


def caller_is_user_code(depth: int = 1) -> bool:
    """Whether the function ``depth`` levels up was called from outside asyncio
    and this package (the immediate caller only, no walk)."""
    try:
        return not sys._getframe(depth + OWN_FRAME).f_code.co_filename.startswith(_SKIPPED)
    except ValueError:
        return False


#: How many Python frames a function of this package's hot modules pushes: 1,
#: or 0 where they are compiled (Cython or mypyc; a compiled function has no
#: frame, so ``sys._getframe(0)`` inside one is its nearest Python caller's).
#: The hot modules are compiled all together or not at all.
OWN_FRAME = 1 if isinstance(user_location, FunctionType) else 0


def await_chain(coro: Any) -> list[FrameType]:
    """The frames of a suspended coroutine chain, outermost first."""
    frames = []
    obj = coro
    for _ in range(256):  # guards against pathological self-referencing chains
        frame = getattr(obj, "cr_frame", None) or getattr(obj, "gi_frame", None)
        if frame is None:
            break
        frames.append(frame)
        obj = getattr(obj, "cr_await", None) or getattr(obj, "gi_yieldfrom", None)
    return frames


def frame_of(obj: Any) -> FrameType | None:
    """The frame of a coroutine, generator or async generator (None once done)."""
    return getattr(obj, "cr_frame", None) or getattr(obj, "gi_frame", None) or getattr(obj, "ag_frame", None)


def chain_objects(coro: Any) -> list[Any]:
    """What a suspended coroutine chain is made of, outermost first: the
    coroutines and generators, and the awaitable at the bottom (a Future's
    iterator)."""
    found = []
    obj = coro
    for _ in range(256):  # guards against pathological self-referencing chains
        if obj is None:
            break
        found.append(obj)
        if frame_of(obj) is None:
            break
        obj = _awaited(obj)
    return found


def _awaited(obj: Any) -> Any:
    """What a coroutine, generator or async generator is suspended in."""
    found = getattr(obj, "cr_await", None) or getattr(obj, "gi_yieldfrom", None)
    return found if found is not None else getattr(obj, "ag_await", None)


def innermost_user_frame(frames: list[FrameType]) -> FrameType | None:
    """The innermost frame of user code in a chain: the ``await`` that waits."""
    for frame in reversed(frames):
        if not is_internal_file(frame.f_code.co_filename):
            return frame
    return None


def innermost_await_frame(coro: Any) -> FrameType | None:
    """The frame a suspended coroutine chain is parked in.

    Follows ``cr_await`` (coroutines), ``gi_yieldfrom`` (generator-based
    awaitables) and ``ag_await`` down to the last object that has a frame. The
    chain ends at a C awaitable such as a Future's iterator, whose awaiting frame
    is the one returned.
    """
    frame = None
    obj = coro
    for _ in range(256):  # guards against pathological self-referencing chains
        f = getattr(obj, "cr_frame", None)
        if f is not None:
            frame, obj = f, obj.cr_await
            continue
        f = getattr(obj, "gi_frame", None)
        if f is not None:
            frame, obj = f, obj.gi_yieldfrom
            continue
        f = getattr(obj, "ag_frame", None)
        if f is not None:
            frame, obj = f, obj.ag_await
            continue
        break
    return frame
