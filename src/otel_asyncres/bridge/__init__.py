"""The bridge from shown entities to OpenTelemetry spans, and runtime metrics."""

from .spans import BridgeOptions, SpanBridge

__all__ = ["BridgeOptions", "SpanBridge"]
