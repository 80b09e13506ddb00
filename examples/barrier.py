"""Three players meeting at an asyncio.Barrier, round after round.

Each round every player does some work of its own length (2, 4 or 6 ms) and
then waits at the barrier until all three have arrived; only then does the
next round start. Exactly one player per round (the one ``wait()`` gives
index 0) reports it, so the output does not depend on who arrived first.
``asyncio.Barrier`` is new in Python 3.11: on 3.10 the program says so and
exits normally.

Run it instrumented:  otel-asyncres run examples/barrier.py

What to look at: ``resource asyncio.Barrier`` (parties=3; ``arrived`` rising
and falling in its ``state_update`` events, ``broken=false``); in each player
that arrived early, an ``async_op Barrier.wait`` span per round lasting until
the last player arrived, linked ``woken_by`` that last player (``player-2``,
the slowest, in a quiet run).
"""

import asyncio
import sys

PLAYERS = 3
ROUNDS = 3


async def player(number: int, barrier: "asyncio.Barrier") -> None:
    for round_ in range(1, ROUNDS + 1):
        await asyncio.sleep((number + 1) * 2 / 1000)  # this player's share of the work
        index = await barrier.wait()  # parks until all PLAYERS have arrived
        if index == 0:
            print(f"round {round_}: all {PLAYERS} players met")


async def main() -> None:
    if sys.version_info < (3, 11):
        print("asyncio.Barrier needs Python 3.11 or later; nothing to show on this version")
        return
    barrier = asyncio.Barrier(PLAYERS)
    players = [asyncio.create_task(player(n, barrier), name=f"player-{n}") for n in range(PLAYERS)]
    await asyncio.gather(*players)
    print(f"done after {ROUNDS} rounds, barrier broken: {barrier.broken}")


if __name__ == "__main__":
    asyncio.run(main())
