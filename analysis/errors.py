"""Errors raised on bad analysis input: each message is one line saying what was found and what is missing."""

from __future__ import annotations


class AnalysisError(ValueError):
    """Base class: the runs given cannot produce the requested table or figure."""


class NoRunsError(AnalysisError, FileNotFoundError):
    """No run records (or no runs of the requested experiment) were found."""


class MixedRunsError(AnalysisError):
    """Runs that must not share a table (other experiments, other datasets, other settings) were mixed."""


class DatasetMismatchError(MixedRunsError):
    """Runs whose annotation files differ (by fingerprint) would be averaged into one cell or compared in one table."""


class UnknownExperimentError(AnalysisError, KeyError):
    """The experiment name has no table spec in `analysis.experiments`."""

    def __str__(self) -> str:
        # KeyError quotes its argument; keep the message a plain line.
        return str(self.args[0]) if self.args else ""


class WandbUnavailableError(AnalysisError):
    """The W&B public API cannot be used: no login, no network, or the project cannot be read in time."""
