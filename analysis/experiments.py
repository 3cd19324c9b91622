"""Declarative table specs: one per experiment (one Hydra sweep in ``experiments/*.yaml``, one paper table).

A spec lists the table's rows in the paper's order. Each row matches runs by their settings (the Hydra choices
plus ``normed_mask``, see `analysis.schema`) and may name the published row it is compared with
(`analysis.published`). Runs that match no row are not dropped: they get an extra row labelled by their
settings. Settings a spec never matches on must be the same for every run of the table (one dataset, one
schedule, ...), and within a row every setting (even two aliases of one level) must be the same, so that
seeds are the only thing averaged.

Option names: a `Level` accepts the Hydra option names (``conf/<group>/<option>.yaml``) listed in ``options``;
add an alias there when a config group names an option differently.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from analysis.errors import UnknownExperimentError
from analysis.published import PUBLISHED


@dataclass(frozen=True)
class Level:
    """One value of a setting as shown in tables (``label``) and the option values that select it."""

    label: str
    options: tuple[Any, ...]

    def accepts(self, value: Any) -> bool:
        # None (a setting the run did not record) only matches an explicit None option.
        return any(value is option or (value is not None and value == option) for option in self.options)


@dataclass(frozen=True)
class Metric:
    """A table column: header text, the frame column it shows, and its LaTeX header."""

    name: str
    column: str
    tex: str


# AP = mask AP, APb = box AP (paper convention).
PAPER_TABLE_METRICS: tuple[Metric, ...] = (
    Metric("AP", "segm/AP", "AP"),
    Metric("APr", "segm/APr", "AP$^r$"),
    Metric("APc", "segm/APc", "AP$^c$"),
    Metric("APf", "segm/APf", "AP$^f$"),
    Metric("APb", "bbox/AP", "AP$^b$"),
)


# Columns gol-tables --protocols adds beside the paper's (mask AP-fixed and AP-pool, Dave et al. 2021; runs
# evaluated with eval.protocols=[standard,fixed,pooled]).
PROTOCOL_METRICS: dict[str, tuple[Metric, ...]] = {
    protocol: tuple(
        Metric(
            f"{name}-{protocol}",
            f"segm_{protocol}/{name}",
            f"AP$^{{{protocol}}}_{{{name[2:]}}}$" if name[2:] else f"AP$^{{{protocol}}}$",
        )
        for name in ("AP", "APr", "APc", "APf")
    )
    for protocol in ("fixed", "pooled")
}


@dataclass(frozen=True)
class RowSpec:
    """One table row.

    Attributes:
        labels: the row's text in each label column.
        match: setting -> level; a run belongs to the row when every setting is accepted.
        published: key of the published row it is compared with (`analysis.published.PUBLISHED`), if any.
        expected: False for a reference-only row (published numbers of a method the sweep does not run).
    """

    labels: tuple[str, ...]
    match: Mapping[str, Level]
    published: str | None = None
    expected: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "match", MappingProxyType(dict(self.match)))
        if self.published is not None and self.published not in PUBLISHED:
            raise ValueError(f"row {self.labels} names unknown published row {self.published!r}")

    def matches(self, run: Mapping[str, Any]) -> bool:
        return all(level.accepts(run.get(setting)) for setting, level in self.match.items())

    def facet(self, setting: str) -> str | None:
        """The display label of `setting` for this row, when the row matches on it."""
        level = self.match.get(setting)
        return None if level is None else level.label


@dataclass(frozen=True)
class TableSpec:
    """How one experiment becomes a table.

    Attributes:
        name: the experiment name (record.json ``experiment``; ``"none"`` for ad-hoc runs).
        title: caption.
        label_headers: headers of the label columns (one per entry of ``RowSpec.labels``).
        rows: the rows in the paper's order.
        figure_x: settings naming the x positions of the Figure 1-style plot (row labels when empty).
        metrics: the metric columns.
    """

    name: str
    title: str
    label_headers: tuple[str, ...]
    rows: tuple[RowSpec, ...]
    figure_x: tuple[str, ...] = ()
    metrics: tuple[Metric, ...] = PAPER_TABLE_METRICS

    def __post_init__(self) -> None:
        for row in self.rows:
            if len(row.labels) != len(self.label_headers):
                raise ValueError(f"spec {self.name}: row {row.labels} needs {len(self.label_headers)} labels")

    @property
    def split_settings(self) -> tuple[str, ...]:
        """Settings any row matches on, in first-seen order."""
        seen: dict[str, None] = {}
        for row in self.rows:
            seen.update(dict.fromkeys(row.match))
        return tuple(seen)


SIGMOID = Level("Sigmoid", ("sigmoid",))
SOFTMAX = Level("Softmax", ("softmax",))
GUMBEL = Level("Gumbel", ("gumbel",))

CE = Level("CE", ("ce", "cross_entropy"))
EQL = Level("EQL", ("eql",))
FEDERATED = Level("Federated", ("federated", "fed", "fedloss", "federated_loss"))
# "gol": the loss option of records written before the recipe group (recipe=gol is DropLoss + Gumbel).
DROPLOSS = Level("DropLoss", ("droploss", "drop_loss", "gol"))
SEESAW = Level("Seesaw", ("seesaw",))


def _detector(label: str, stem: str) -> Level:
    return Level(label, (stem, f"{stem}_fpn", f"maskrcnn_{stem}_fpn", f"mask_rcnn_{stem}_fpn", f"maskrcnn_{stem}"))


R50 = _detector("R50", "r50")
R101 = _detector("R101", "r101")
X101 = Level("X101", (*_detector("X101", "x101").options, "x101_64x4d", "maskrcnn_x101_64x4d_fpn"))
CASCADE_R101 = Level(
    "C-R101", ("cascade_r101", "cascade_r101_fpn", "cascade_maskrcnn_r101_fpn", "cascade_mask_rcnn_r101_fpn")
)
HTC_R101 = Level("H-R101", ("htc_r101", "htc_r101_fpn", "htc_without_semantic_r101_fpn"))

LVIS_V1 = Level("LVIS v1", ("lvis_v1", "lvis", "lvis1", "lvisv1"))
LVIS_V05 = Level("LVIS v0.5", ("lvis_v05", "lvis_v0.5", "lvis_v0_5", "lvis05", "lvisv05"))

RANDOM = Level("random", ("random", "uniform", "default"))
# rfs_ceil is mmdet's ClassBalancedDataset rounding (the official GOL runs); rfs is detectron2's.
RFS = Level("RFS", ("rfs", "rfs_ceil", "repeat_factor"))

SCHEDULE_1X = Level("1x", ("1x", "lvis_1x"))
SCHEDULE_2X = Level("2x", ("2x", "lvis_2x"))

EQLV2 = Level("EQLv2", ("eqlv2",))
AGLU = Level("AGLU", ("aglu",))
NO_CALIBRATION = Level("none", ("none", None))  # None: a record from before the calibration group
FRACAL = Level("FRACAL", ("fracal",))

PLAIN_MASK = Level("FCN mask", (False,))
NORMED_MASK = Level("normalised mask", (True,))


def grid(
    axes: Sequence[tuple[str, Sequence[Level]]], published: Callable[[Mapping[str, str]], str | None] = lambda _: None
) -> tuple[RowSpec, ...]:
    """Rows for every combination of the axes' levels (the first axis varies slowest).

    `published` maps a row's ``{setting: label}`` to its published key (or None).
    """
    rows = []
    for levels in itertools.product(*(axis_levels for _, axis_levels in axes)):
        match = {setting: level for (setting, _), level in zip(axes, levels, strict=True)}
        labels = {setting: level.label for setting, level in match.items()}
        rows.append(RowSpec(labels=tuple(labels.values()), match=match, published=published(labels)))
    return tuple(rows)


_FIG_1_DETECTORS = {"R101": "m-r101", "X101": "m-x101", "C-R101": "c-r101", "H-R101": "h-r101"}


def _activations_published(labels: Mapping[str, str]) -> str | None:
    activation = labels["activation"].lower()
    if labels["detector"] == "R50":
        return f"readme-1.1/{activation}"
    if activation == "sigmoid":
        return None  # Figure 1 has no Sigmoid curve.
    return f"fig-1/{_FIG_1_DETECTORS[labels['detector']]}/{activation}"


def _schedule_sampler_published(labels: Mapping[str, str]) -> str | None:
    if labels["schedule"] == "1x" and labels["sampler"] == "random":
        return f"readme-1.1/{labels['activation'].lower()}"
    return None


_GOL = {"loss": DROPLOSS, "activation": GUMBEL, "normed_mask": NORMED_MASK, "sampler": RFS}

SPECS: Mapping[str, TableSpec] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            TableSpec(
                name="activations",
                title="Activation x detector, Mask R-CNN family, LVIS v1, 1x, no RFS",
                label_headers=("Detector", "Activation"),
                rows=grid(
                    [
                        ("detector", (R50, R101, X101, CASCADE_R101, HTC_R101)),
                        ("activation", (SIGMOID, SOFTMAX, GUMBEL)),
                    ],
                    _activations_published,
                ),
                figure_x=("detector",),
            ),
            TableSpec(
                name="schedule_sampler",
                title="Activation x schedule x sampler, Mask R-CNN R50, LVIS v1",
                label_headers=("Schedule", "Sampler", "Activation"),
                rows=grid(
                    [
                        ("schedule", (SCHEDULE_1X, SCHEDULE_2X)),
                        ("sampler", (RANDOM, RFS)),
                        ("activation", (SIGMOID, SOFTMAX, GUMBEL)),
                    ],
                    _schedule_sampler_published,
                ),
                figure_x=("schedule", "sampler"),
            ),
            TableSpec(
                name="lvis_v05",
                title="Softmax vs Gumbel on LVIS v0.5, Mask R-CNN R50",
                label_headers=("Schedule", "Activation"),
                rows=grid([("schedule", (SCHEDULE_1X, SCHEDULE_2X)), ("activation", (SOFTMAX, GUMBEL))]),
                figure_x=("schedule",),
            ),
            TableSpec(
                name="losses",
                title="Gumbel inside existing losses vs their sigmoid versions, Mask R-CNN R50, LVIS v1",
                label_headers=("Loss", "Activation"),
                rows=grid([("loss", (EQL, FEDERATED, DROPLOSS)), ("activation", (SIGMOID, GUMBEL))]),
                figure_x=("loss",),
            ),
            TableSpec(
                name="gol_ablation",
                title="GOL ablation: DropLoss with Gumbel, + normalised mask head, + RFS, Mask R-CNN R50, LVIS v1",
                label_headers=("Method",),
                rows=(
                    RowSpec(("DropLoss (Gumbel)",), {**_GOL, "normed_mask": PLAIN_MASK, "sampler": RANDOM}),
                    RowSpec(("+ normalised mask",), {**_GOL, "sampler": RANDOM}),
                    RowSpec(("+ RFS (GOL)",), _GOL, published="readme-1.2/gol-r50-v1"),
                ),
            ),
            TableSpec(
                name="sota",
                title="Comparison with the state of the art, Mask R-CNN",
                label_headers=("Method", "Backbone", "Dataset"),
                rows=(
                    RowSpec(
                        ("RFS", "R50", "LVIS v1"),
                        {"loss": CE, "activation": SOFTMAX, "sampler": RFS, "detector": R50, "dataset": LVIS_V1},
                        published="sota/rfs",
                    ),
                    RowSpec(
                        ("Seesaw", "R50", "LVIS v1"),
                        {"loss": SEESAW, "sampler": RFS, "detector": R50, "dataset": LVIS_V1},
                        published="sota/seesaw",
                    ),
                    RowSpec(("LOCE", "R50", "LVIS v1"), {}, published="sota/loce", expected=False),
                    RowSpec(
                        ("GOL", "R50", "LVIS v1"), {**_GOL, "detector": R50, "dataset": LVIS_V1}, published="sota/gol"
                    ),
                    RowSpec(
                        ("GOL", "R101", "LVIS v1"),
                        {**_GOL, "detector": R101, "dataset": LVIS_V1},
                        published="readme-1.2/gol-r101-v1",
                    ),
                    RowSpec(
                        ("GOL", "R50", "LVIS v0.5"),
                        {**_GOL, "detector": R50, "dataset": LVIS_V05},
                        published="readme-1.2/gol-r50-v0.5",
                    ),
                ),
            ),
            TableSpec(
                name="beyond",
                title="After GOL: EQLv2, the learnable AGLU activation and FRACAL calibration, Mask R-CNN R50, LVIS v1",
                label_headers=("Method", "Schedule"),
                rows=(
                    RowSpec(
                        ("GOL", "2x"),
                        {**_GOL, "schedule": SCHEDULE_2X, "calibration": NO_CALIBRATION},
                        published="sota/gol",
                    ),
                    RowSpec(
                        ("EQLv2 (sigmoid)", "1x"),
                        {
                            "loss": EQLV2,
                            "activation": SIGMOID,
                            "sampler": RANDOM,
                            "schedule": SCHEDULE_1X,
                        },
                        published="beyond/eqlv2",
                    ),
                    RowSpec(
                        ("AGLU (CE)", "1x"),
                        {"loss": CE, "activation": AGLU, "sampler": RANDOM, "schedule": SCHEDULE_1X},
                    ),
                    RowSpec(
                        ("AGLU + GOL", "2x"),
                        {**_GOL, "activation": AGLU, "schedule": SCHEDULE_2X},
                        published="beyond/apa-gol",
                    ),
                    RowSpec(
                        ("GOL + FRACAL", "2x"),
                        {**_GOL, "schedule": SCHEDULE_2X, "calibration": FRACAL},
                        published="beyond/fracal",
                    ),
                ),
            ),
            TableSpec(
                name="demo",
                title="Demo: activation sweep on the embedded dataset",
                label_headers=("Activation",),
                rows=grid([("activation", (SIGMOID, SOFTMAX, GUMBEL))]),
                figure_x=("detector",),
            ),
        )
    }
)

ADHOC = "none"
# Ad-hoc runs (record.json experiment null) are grouped by these settings, plus any other setting that varies.
ADHOC_SETTINGS: tuple[str, ...] = ("activation", "loss", "detector")


def known_experiments() -> tuple[str, ...]:
    """Experiment names a table can be built for (``"none"`` = ad-hoc runs)."""
    return (*SPECS, ADHOC)


def check_experiment(name: str) -> None:
    """Raise a one-line UnknownExperimentError unless `name` is a known experiment or ``"none"``."""
    if name != ADHOC:
        get_spec(name)


def get_spec(name: str) -> TableSpec:
    """The spec of experiment `name`; a one-line error lists the known names. ``"none"`` has no fixed spec."""
    if name == ADHOC:
        raise UnknownExperimentError("ad-hoc runs have no fixed spec; build it with analysis.experiments.adhoc_spec")
    try:
        return SPECS[name]
    except KeyError:
        raise UnknownExperimentError(
            f"no table spec for experiment {name!r}; known experiments: {', '.join(known_experiments())}"
        ) from None


def adhoc_spec(settings: Sequence[str], combos: Sequence[Mapping[str, Any]]) -> TableSpec:
    """A spec for ad-hoc runs: one row per observed combination of `settings` (raw option names as labels)."""
    rows = tuple(
        RowSpec(
            labels=tuple(_text(combo[s]) for s in settings),
            match={s: Level(_text(combo[s]), (combo[s],)) for s in settings},
        )
        for combo in combos
    )
    headers = tuple(s.replace("_", " ").capitalize() for s in settings)
    figure_x = tuple(s for s in settings if s != "activation")
    return TableSpec(name=ADHOC, title="Ad-hoc runs", label_headers=headers, rows=rows, figure_x=figure_x)


def _text(value: Any) -> str:
    return "-" if value is None else str(value)
