"""Event wait/set/clear across tasks; Condition notify(1), notify_all and wait_for."""

import asyncio

import _parity  # noqa: F401


async def event_waiter(name: str, ev: asyncio.Event) -> None:
    print(f"{name}: waiting (is_set={ev.is_set()})")
    await ev.wait()
    print(f"{name}: woke")


async def cond_waiter(name: str, cond: asyncio.Condition, state: list[int]) -> None:
    async with cond:
        print(f"{name}: waiting on condition")
        await cond.wait()
        print(f"{name}: notified, state={state}")


async def predicate_waiter(cond: asyncio.Condition, state: list[int]) -> None:
    async with cond:
        print("pred: wait_for(state >= 3)")
        await cond.wait_for(lambda: state[0] >= 3)
        print("pred: predicate true, state", state)


async def main() -> None:
    ev = asyncio.Event()
    ws = [asyncio.create_task(event_waiter(f"e{i}", ev), name=f"e{i}") for i in range(3)]
    await asyncio.sleep(0)
    print("main: set")
    ev.set()
    ev.clear()
    print("main: cleared right after set; is_set", ev.is_set())
    await asyncio.gather(*ws)
    ev.set()
    await event_waiter("late", ev)

    cond = asyncio.Condition()
    state = [0]
    cs = [asyncio.create_task(cond_waiter(f"c{i}", cond, state), name=f"c{i}") for i in range(3)]
    p = asyncio.create_task(predicate_waiter(cond, state), name="pred")
    await asyncio.sleep(0)
    for i in range(4):
        async with cond:
            state[0] += 1
            if i == 0:
                print("main: notify(1)")
                cond.notify(1)
            else:
                print("main: notify_all, state", state)
                cond.notify_all()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    await asyncio.gather(*cs, p)
    try:
        cond.notify()
    except RuntimeError as exc:
        print("main: notify without the lock ->", exc)


asyncio.run(main())
