"""3.12+: the eager task factory: first steps run inside create_task."""
# parity: variants=asyncio,uvloop

import asyncio

from _parity import requires

requires((3, 12))


async def instant(name: str) -> str:
    print(f"{name}: ran synchronously")
    return name


async def blocking(name: str, ev: asyncio.Event) -> str:
    print(f"{name}: first step, about to wait")
    await ev.wait()
    print(f"{name}: resumed")
    await asyncio.sleep(0)
    print(f"{name}: finishing")
    return name


async def failing() -> None:
    print("failing: raising in the first step")
    raise ValueError("eager failure")


def eager_supported() -> bool:
    """uvloop 0.23 on 3.13.0 rejects the factory's eager_start keyword (a
    uvloop bug, not the instrumentation's): then there is nothing to compare."""

    async def probe() -> None:
        pass

    loop = asyncio.new_event_loop()
    loop.set_task_factory(asyncio.eager_task_factory)
    coro = probe()
    try:
        loop.run_until_complete(coro)
        return True
    except TypeError:
        return False
    finally:
        coro.close()
        loop.close()


async def main() -> None:
    loop = asyncio.get_running_loop()
    loop.set_task_factory(asyncio.eager_task_factory)
    ev = asyncio.Event()
    print("main: creating instant")
    t1 = asyncio.create_task(instant("i1"), name="i1")
    print("main: instant done?", t1.done(), "result", t1.result())
    print("main: creating blocking")
    t2 = asyncio.create_task(blocking("b1", ev), name="b1")
    t3 = asyncio.create_task(blocking("b2", ev), name="b2")
    print("main: blocking done?", t2.done(), t3.done(), "names", t2.get_name(), t3.get_name())
    t4 = asyncio.create_task(failing(), name="failing")
    print("main: failing done?", t4.done(), repr(t4.exception()))
    ev.set()
    print("main: event set")
    print("main: gather ->", await asyncio.gather(t2, t3))
    print("main: nested eager ->", await asyncio.gather(instant("i2"), instant("i3")))
    t5 = asyncio.create_task(blocking("b3", ev), name="b3")
    print("main: b3 done immediately?", t5.done())
    print("main: b3 ->", await t5)
    loop.set_task_factory(None)
    t6 = asyncio.create_task(instant("lazy"), name="lazy")
    print("main: lazy task done after create?", t6.done())
    print("main: lazy ->", await t6)


if eager_supported():
    asyncio.run(main())
else:
    print("SKIP: the eager task factory does not work on this loop")
