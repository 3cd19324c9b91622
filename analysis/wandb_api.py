"""Source (c): runs of a W&B project via the public API -> the analysis DataFrame (schema in `analysis.schema`).

Used only when a login exists (``WANDB_API_KEY``, ``WANDB_IDENTITY_TOKEN_FILE`` or a netrc entry); the query
runs in a daemon thread with a deadline, so an unreachable server gives a one-line WandbUnavailableError
instead of a hang or an interactive prompt.

Mapping of a W&B run (as gol's tracker logs it: the resolved config, group = experiment or "adhoc", name = the
cell's overrides such as ``activation=gumbel,detector=maskrcnn_r50_fpn,seed=1``) to a row:
- settings: ``config["choices"]`` or ``config["hydra"]["runtime"]["choices"]`` when logged, else the
  ``group=option`` overrides of the run name (the swept choices; fixed ones stay None = not recorded);
  ``normed_mask`` from ``config["detector"]["normed_mask"]``; ``seed`` from ``config["seed"]``;
- experiment: ``config["experiment"]`` when it is a name, else the run's group ("adhoc" = None);
- provenance (commit, dirty tree, annotation digests): ``config["provenance"]``, as the run record holds it;
- state: finished -> finished; running/pending/preempting -> running; crashed/failed/killed -> failed;
- metrics: summary keys ``segm/AP``, ..., ``bbox/APf`` (nested ``{"segm": {"AP": ...}}`` also read).
"""

from __future__ import annotations

import netrc
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.errors import WandbUnavailableError
from analysis.schema import CHOICE_FIELDS, METRIC_COLUMNS, make_frame, provenance_values

# gol's tracker groups runs by experiment; ad-hoc runs go to this group.
ADHOC_GROUP = "adhoc"
_STATES = {
    "finished": "finished",
    "running": "running",
    "pending": "running",
    "preempting": "running",
    "preempted": "failed",
    "crashed": "failed",
    "failed": "failed",
    "killed": "failed",
}


def has_wandb_login() -> bool:
    """True when W&B credentials are configured (environment or netrc); never prompts."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    candidates = [Path(os.environ["NETRC"]).expanduser()] if os.environ.get("NETRC") else []
    candidates += [Path("~/.netrc").expanduser(), Path("~/_netrc").expanduser()]
    for path in candidates:
        if not path.is_file():
            continue
        try:
            hosts = netrc.netrc(str(path)).hosts
        except (netrc.NetrcParseError, OSError):
            continue
        if hosts:
            return True
    return False


def fetch_wandb_runs(project: str, *, group: str | None, timeout: float = 30.0) -> pd.DataFrame:
    """The runs of ``entity/project`` in W&B group `group` (an experiment name or "adhoc"; None = all) as rows.

    Raises WandbUnavailableError (one line) without a login, on any API error, or after `timeout` seconds.
    """
    if project.count("/") != 1 or not all(project.split("/")):
        raise WandbUnavailableError(f"W&B source {project!r} is not 'entity/project'; pass --runs wandb:entity/project")
    if not has_wandb_login():
        raise WandbUnavailableError(
            f"no W&B login (WANDB_API_KEY or netrc) to read {project}; run `wandb login` or pass local run folders"
        )
    filters: dict[str, Any] = {} if group is None else {"$or": [{"group": group}, {"config.experiment": group}]}
    outcome: dict[str, Any] = {}

    def query() -> None:
        import wandb

        try:
            api = wandb.Api(timeout=max(1, int(timeout)))
            try:
                runs = api.runs(project, filters=filters, per_page=100, lazy=False)
            except TypeError:  # SDKs before `lazy` existed load everything anyway
                runs = api.runs(project, filters=filters, per_page=100)
            outcome["rows"] = [
                row_from_wandb(
                    path="/".join(run.path),
                    run_id=run.id,
                    name=run.name,
                    state=run.state,
                    group=run.group,
                    config=dict(run.config),
                    summary=dict(run.summary_metrics),
                )
                for run in runs
            ]
        except Exception as exc:  # any failure of the remote API is reported as one line by the caller
            outcome["error"] = exc

    thread = threading.Thread(target=query, name="gol-wandb-query", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise WandbUnavailableError(
            f"W&B project {project} did not answer within {timeout:g} s; check the network or use the local run folders"
        )
    if "error" in outcome:
        first_line = str(outcome["error"]).strip().splitlines()[0] if str(outcome["error"]).strip() else ""
        raise WandbUnavailableError(
            f"W&B project {project} cannot be read: {type(outcome['error']).__name__}: {first_line}"
        )
    return make_frame(outcome["rows"])


def row_from_wandb(
    *,
    path: str,
    run_id: str,
    name: str | None,
    state: str,
    group: str | None,
    config: Mapping[str, Any],
    summary: Mapping[str, Any],
) -> dict[str, Any]:
    """One schema row from the fields of a public-API run (plain data, so it is testable offline)."""
    config = _unwrap(config)
    choices = config.get("choices")
    if not isinstance(choices, Mapping):
        choices = _get(config, "hydra", "runtime", "choices")
    if not isinstance(choices, Mapping):
        choices = _choices_from_name(name or "")
    detector = config.get("detector")
    normed_mask = bool(detector.get("normed_mask", False)) if isinstance(detector, Mapping) else None
    experiment = config.get("experiment")
    logged = config.get("provenance")
    provenance: Mapping[str, Any] = logged if isinstance(logged, Mapping) else {}
    row: dict[str, Any] = {
        "source": "wandb",
        "run_id": run_id,
        "run_dir": None,
        "run_path": path,
        "experiment": experiment if isinstance(experiment, str) else (None if group == ADHOC_GROUP else group),
        "state": _STATES.get(state, "failed"),
        "error": None,
        **{field: None if choices.get(field) is None else str(choices[field]) for field in CHOICE_FIELDS},
        "normed_mask": normed_mask,
        "seed": config.get("seed"),
        "overrides": "",
        "deviations": "; ".join(str(d) for d in config.get("deviations") or []),
        **provenance_values(provenance.get("git_commit"), provenance.get("git_dirty"), provenance.get("annotations")),
        "wandb_id": run_id,
        "wandb_project": path.rsplit("/", 1)[0] if "/" in path else None,
    }
    for column in METRIC_COLUMNS:
        iou, name = column.split("/")
        value = summary.get(column)
        if value is None and isinstance(summary.get(iou), Mapping):
            value = summary[iou].get(name)
        row[column] = value
    return row


def _choices_from_name(name: str) -> dict[str, str]:
    choices = {}
    for item in name.split(","):
        key, sep, value = item.partition("=")
        key = key.strip().lstrip("+~")
        if sep and key in CHOICE_FIELDS:
            choices[key] = value.strip()
    return choices


def _unwrap(config: Mapping[str, Any]) -> dict[str, Any]:
    # Older APIs return {"key": {"value": v, "desc": ...}}.
    return {
        k: v["value"] if isinstance(v, Mapping) and "value" in v and set(v) <= {"value", "desc"} else v
        for k, v in config.items()
    }


def _get(mapping: Mapping[str, Any], *keys: str) -> Any:
    node: Any = mapping
    for key in keys:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node
