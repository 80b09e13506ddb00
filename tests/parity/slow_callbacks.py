"""asyncio debug mode's report of slow callbacks: "Executing <handle> took N
seconds", logged for every handle the loop runs for longer than
``slow_callback_duration``. With a duration of 0 every handle the loop runs is
reported, so any handle the instrumentation puts in the ready queue would be
(CPython's test_base_events.test_log_slow_callbacks does this). The reports
are collected from asyncio's logger and printed with their durations removed.

Not on uvloop: there a task's step is bracketed by two real handles
(``TaskTracker.poll_begin`` and ``poll_finish``, see ``hooks``), which uvloop's
debug mode reports as it reports any handle.
"""
# parity: variants=asyncio,pytask

import asyncio
import logging
import re

import _parity  # noqa: F401

reports: list[str] = []


class Collect(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("Executing "):
            reports.append(re.sub(r"took \d+\.\d+ seconds", "took N seconds", record.getMessage()))


logging.getLogger("asyncio").addHandler(Collect())


async def worker(n: int) -> int:
    await asyncio.sleep(0)
    return n


def user_callback() -> None:
    reports.append("user_callback ran")


async def main() -> None:
    loop = asyncio.get_running_loop()
    loop.slow_callback_duration = 0.0
    one = asyncio.create_task(worker(1), name="one")
    print("main: one ->", await one)
    loop.call_soon(user_callback)
    await asyncio.sleep(0)
    two = asyncio.ensure_future(worker(2))
    print("main: two ->", await two)
    loop.slow_callback_duration = 3600.0  # not what asyncio.run does after main


asyncio.run(main(), debug=True)
for line in reports:
    print(line)
