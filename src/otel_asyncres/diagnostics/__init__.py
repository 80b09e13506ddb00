"""Diagnostics: Tokio Console's lints and more, travelling with the traces.

``lints`` finds them on the loop, from the state the instrumentation keeps
there (long polls, self-wakes, long waits, lost wakers, deadlocks);
``deadlocks`` reads the wait-for graph, ``lost_wakers`` who can still reach
what a task waits on.
"""

from .deadlocks import Deadlock, DeadlockedTask
from .lints import Lint, LintOptions, Severity

__all__ = ["Deadlock", "DeadlockedTask", "Lint", "LintOptions", "Severity"]
