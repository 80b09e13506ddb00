"""The interleaving of task steps, call_soon callbacks, done callbacks and timers."""

import asyncio

import _parity  # noqa: F401


async def spinner(name: str, n: int) -> str:
    for i in range(n):
        print(f"{name}: step {i}")
        await asyncio.sleep(0)
    print(f"{name}: end")
    return name


async def napper(name: str, delay: float) -> None:
    print(f"{name}: sleeping {delay}")
    await asyncio.sleep(delay)
    print(f"{name}: woke")


async def on_future(name: str, fut: asyncio.Future[str]) -> None:
    print(f"{name}: awaiting")
    print(f"{name}: got", await fut)


async def main() -> None:
    loop = asyncio.get_running_loop()
    a = asyncio.create_task(spinner("a", 3), name="a")
    loop.call_soon(print, "callback 1")
    b = asyncio.create_task(spinner("b", 2), name="b")
    loop.call_soon(print, "callback 2")
    a.add_done_callback(lambda t: print("done callback of", t.get_name()))
    print("main: yielding")
    await asyncio.sleep(0)
    print("main: back")
    c = asyncio.create_task(spinner("c", 1), name="c")
    print("main: gather ->", await asyncio.gather(a, b, c))

    fut = loop.create_future()
    fut.add_done_callback(lambda f: print("fut callback 1"))
    w1 = asyncio.create_task(on_future("w1", fut), name="w1")
    await asyncio.sleep(0)
    fut.add_done_callback(lambda f: print("fut callback 2"))
    w2 = asyncio.create_task(on_future("w2", fut), name="w2")
    await asyncio.sleep(0)
    fut.add_done_callback(lambda f: print("fut callback 3"))
    print("main: removing callback count", fut.remove_done_callback(print))
    fut.set_result("value")
    print("main: result set")
    await asyncio.gather(w1, w2)

    loop.call_later(0.2, print, "timer 0.2")
    loop.call_later(0.1, print, "timer 0.1")
    h = loop.call_later(0.15, print, "timer cancelled")
    h.cancel()
    # Deadlines are far apart (100 ms) compared with how long a loaded machine
    # may take between two steps, so the order timers fire in is deterministic.
    await asyncio.gather(napper("n0", 0), napper("n1", 0.3), napper("n2", 0.4))
    loop.call_soon(print, "soon after timers")
    await asyncio.sleep(0)

    order = []
    for i in range(5):
        loop.call_soon(order.append, i)
    await asyncio.sleep(0)
    print("main: call_soon order", order)
    print("main: end")


asyncio.run(main())
