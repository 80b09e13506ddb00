"""Exceptions in plain callbacks and done callbacks; a custom exception handler."""

import asyncio

import _parity  # noqa: F401


def bad(tag: str) -> None:
    print("bad: raising for", tag)
    raise RuntimeError(tag)


async def main() -> None:
    loop = asyncio.get_running_loop()
    loop.call_soon(bad, "call_soon")
    await asyncio.sleep(0)
    print("main: after a failing call_soon callback")
    fut = loop.create_future()
    fut.add_done_callback(lambda f: bad("done callback"))
    fut.set_result(None)
    await asyncio.sleep(0)
    print("main: after a failing done callback")

    def handler(loop: asyncio.AbstractEventLoop, context: dict) -> None:  # type: ignore[type-arg]
        print("handler: message", context["message"], "keys", sorted(context))
        print("handler: exception", repr(context.get("exception")))

    loop.set_exception_handler(handler)
    loop.call_soon(bad, "with a handler")
    await asyncio.sleep(0)
    t = asyncio.create_task(asyncio.sleep(0), name="sleeper")
    t.add_done_callback(lambda _t: bad("task done callback"))
    await t
    await asyncio.sleep(0)
    loop.call_exception_handler({"message": "custom report"})
    loop.set_exception_handler(None)
    loop.call_exception_handler({"message": "custom report to the default handler"})
    print("main: end")


asyncio.run(main())
