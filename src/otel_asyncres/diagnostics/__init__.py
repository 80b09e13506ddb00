"""Diagnostics: Tokio Console's lints and more, travelling with the traces.

``analyzer`` infers them from the records (self-wakes, long waits, deadlocks)
and reports every one, those the instrumentation finds itself included (long
polls, lost wakers); ``deadlocks`` keeps the wait-for graph.
"""

from .analyzer import DiagnosticOptions, Diagnostics
from .deadlocks import Deadlock, DeadlockedTask

__all__ = ["Deadlock", "DeadlockedTask", "DiagnosticOptions", "Diagnostics"]
