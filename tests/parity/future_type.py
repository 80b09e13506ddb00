"""The class of the futures that loop.create_future() returns, and what code can see of it."""

import asyncio

import _parity  # noqa: F401


async def main() -> None:
    loop = asyncio.get_running_loop()
    f = loop.create_future()
    plain = asyncio.Future()
    print("type(create_future()) is type(Future()):", type(f) is type(plain))
    print("type(create_future()) is asyncio.Future:", type(f) is asyncio.Future)
    print("type:", type(f).__module__, type(f).__qualname__)
    print("mro length:", len(type(f).__mro__))
    try:
        f.some_attribute = 1  # type: ignore[attr-defined]
        print("attribute set")
    except AttributeError as exc:
        print("AttributeError:", exc)
    print("has __dict__:", hasattr(f, "__dict__"))
    print("result attribute is a bound method:", type(f.result).__name__)
    f.set_result(1)
    print("await ->", await f)


asyncio.run(main())
