"""Futures set before and after being awaited, made by asyncio.Future() and loop.create_future()."""

import asyncio

import _parity  # noqa: F401


async def receiver(name: str, fut: asyncio.Future[str]) -> None:
    print(f"{name}: awaiting (done={fut.done()})")
    try:
        value = await fut
        print(f"{name}: received {value!r}")
    except Exception as exc:
        print(f"{name}: raised {exc!r}")


async def main() -> None:
    loop = asyncio.get_running_loop()
    for maker in ("asyncio.Future()", "loop.create_future()"):
        print(f"== {maker}")
        make = asyncio.Future if maker == "asyncio.Future()" else loop.create_future
        before = make()
        before.set_result("set before")
        print("main: before:", before, "type", type(before).__name__)
        await receiver("r-before", before)

        after = make()
        t = asyncio.create_task(receiver("r-after", after), name="r-after")
        await asyncio.sleep(0)
        print("main: after, pending:", after)
        after.set_result("set after")
        print("main: after, set:", after)
        await t

        err = make()
        t = asyncio.create_task(receiver("r-err", err), name="r-err")
        await asyncio.sleep(0)
        err.set_exception(LookupError("boom"))
        await t
        print("main: exception() ->", repr(err.exception()))

        two = make()
        ts = [asyncio.create_task(receiver(f"r-two{i}", two), name=f"r-two{i}") for i in range(2)]
        await asyncio.sleep(0)
        two.add_done_callback(lambda f: print("callback: done, result", f.result()))
        two.set_result("shared")
        await asyncio.gather(*ts)

        fresh = make()
        try:
            fresh.result()
        except asyncio.InvalidStateError as exc:
            print("main: result() of a pending future ->", type(exc).__name__, exc)
        fresh.set_result(1)
        try:
            fresh.set_result(2)
        except asyncio.InvalidStateError as exc:
            print("main: second set_result ->", type(exc).__name__, exc)
        print("main: get_loop is loop:", fresh.get_loop() is loop)
        print("main: isinstance Future:", isinstance(fresh, asyncio.Future), asyncio.isfuture(fresh))
        try:
            fresh.set_exception(StopIteration())
        except (TypeError, asyncio.InvalidStateError) as exc:
            print("main: set_exception on a done future ->", type(exc).__name__)
        s = make()
        try:
            s.set_exception(StopIteration())
        except TypeError as exc:
            print("main: set_exception(StopIteration) ->", exc)
        s.cancel()


asyncio.run(main())
