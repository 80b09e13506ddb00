"""A Task subclass installed with a task factory."""

import asyncio

import _parity  # noqa: F401


class CountingTask(asyncio.Task):  # type: ignore[type-arg]
    created = 0

    def __init__(self, coro, *, loop=None, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(coro, loop=loop, **kwargs)
        CountingTask.created += 1
        print("CountingTask: created", self.get_name())

    def cancel(self, msg=None):  # type: ignore[no-untyped-def]
        print("CountingTask: cancel requested for", self.get_name())
        return super().cancel(msg)


def factory(loop, coro, **kwargs):  # type: ignore[no-untyped-def]
    return CountingTask(coro, loop=loop, **kwargs)


async def child(name: str, ev: asyncio.Event) -> str:
    print(f"{name}: waiting")
    await ev.wait()
    print(f"{name}: done")
    return name


async def main() -> None:
    loop = asyncio.get_running_loop()
    loop.set_task_factory(factory)
    ev = asyncio.Event()
    a = asyncio.create_task(child("a", ev), name="a")
    b = asyncio.create_task(child("b", ev), name="b")
    print("main: types", type(a).__name__, type(b).__name__)
    await asyncio.sleep(0)
    print("main: a is", a)
    b.cancel()
    ev.set()
    print("main: a ->", await a)
    try:
        await b
    except asyncio.CancelledError:
        print("main: b cancelled")
    print("main: gather ->", await asyncio.gather(child("c", ev), child("d", ev)))
    print("main: created", CountingTask.created)
    direct = CountingTask(child("direct", ev), loop=loop, name="direct")
    print("main: direct ->", await direct)


asyncio.run(main())
