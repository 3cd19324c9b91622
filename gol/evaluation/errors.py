"""The error raised for bad evaluation input (annotations, detections, options), before any expensive work."""

from __future__ import annotations


class EvaluationInputError(ValueError):
    """Annotations, detections or options that cannot be evaluated; the message is one line saying how to fix it."""
