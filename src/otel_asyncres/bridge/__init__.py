"""The bridge from records to OpenTelemetry spans."""

from .spans import BridgeOptions, SpanBridge

__all__ = ["BridgeOptions", "SpanBridge"]
