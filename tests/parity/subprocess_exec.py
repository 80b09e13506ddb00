"""A child process through asyncio.create_subprocess_exec, with pipes."""

import asyncio
import sys

import _parity  # noqa: F401

CHILD = "import sys; data = sys.stdin.read(); print('child got', data.strip()); sys.exit(7)"


async def main() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-I",
        "-c",
        CHILD,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    print("main: started")
    out, err = await proc.communicate(b"ping\n")
    print("main: output", out, "stderr", err, "returncode", proc.returncode)
    proc = await asyncio.create_subprocess_exec(sys.executable, "-I", "-c", "pass")
    print("main: wait ->", await proc.wait())


asyncio.run(main())
