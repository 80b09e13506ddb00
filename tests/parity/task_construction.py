"""Tasks made every way: create_task, loop.create_task, asyncio.Task(), ensure_future, from a callback."""

import asyncio

import _parity  # noqa: F401


async def job(name: str, steps: int = 1) -> str:
    for i in range(steps):
        print(f"{name}: step {i}")
        await asyncio.sleep(0)
    print(f"{name}: done")
    return name


async def main() -> None:
    loop = asyncio.get_running_loop()
    made = [
        asyncio.create_task(job("create_task", 2), name="create_task"),
        loop.create_task(job("loop.create_task", 2), name="loop.create_task"),
        asyncio.Task(job("Task()", 2), name="Task()"),
        asyncio.ensure_future(job("ensure_future", 2)),
    ]
    made[-1].set_name("ensure_future")
    from_callback: list[asyncio.Task[str]] = []
    loop.call_soon(lambda: from_callback.append(loop.create_task(job("from callback"), name="cb")))
    print("main: created", [t.get_name() for t in made])
    print("main: results", await asyncio.gather(*made))
    await asyncio.sleep(0)
    print("main: from callback ->", await from_callback[0])
    print("main: ensure_future of a task is the task:", asyncio.ensure_future(made[0]) is made[0])
    f = loop.create_future()
    print("main: ensure_future of a future is the future:", asyncio.ensure_future(f) is f)
    f.cancel()

    class Awaitable:
        def __await__(self):  # type: ignore[no-untyped-def]
            print("Awaitable: __await__")
            yield from asyncio.sleep(0).__await__()
            return "awaitable result"

    print("main: ensure_future(awaitable) ->", await asyncio.ensure_future(Awaitable()))
    print("main: sleep returns its result ->", await asyncio.sleep(0, result="slept"))
    done_order: list[str] = []
    ts = [asyncio.create_task(job(f"d{i}"), name=f"d{i}") for i in range(3)]
    for t in reversed(ts):
        t.add_done_callback(lambda t: done_order.append(t.get_name()))
    await asyncio.gather(*ts)
    print("main: done callbacks ran in order", done_order)


asyncio.run(main())
