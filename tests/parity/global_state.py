"""The process-wide asyncio state a program finds at start: no event loop
policy until the program asks for one, no running loop, the task counter at 1.

CPython's own tests check that ``asyncio.events._event_loop_policy`` is as
they found it (regrtest's saved environment); the instrumentation's start-up
once created the default policy, and every test file that resets the policy
in its tear-down was reported as having altered the environment.
"""

import asyncio
import asyncio.events

print("start: policy:", asyncio.events._event_loop_policy)
print("start: running loop:", asyncio.events._get_running_loop())

import _parity  # noqa: E402, F401


async def main() -> None:
    task = asyncio.current_task()
    assert task is not None
    print("main: first task:", task.get_name())


asyncio.run(main())
print("after run: policy:", type(asyncio.get_event_loop_policy()).__name__)
asyncio.set_event_loop_policy(None)
print("after reset: policy:", asyncio.events._event_loop_policy)
