"""Published numbers that regenerated tables are compared with.

Values are percentages (x100), as printed by the paper and the official README. AP, APr, APc and APf are mask
AP; APb is box AP. A metric that the source does not give is absent from ``values``. Every entry carries the
source it was read from and how sure that reading is:

- ``README 1.1``: activation table of the official README (paper-notes 1.1) [VERIFIED-README].
- ``README 1.2``: released GOL models of the official README (paper-notes 1.2) [VERIFIED-README].
- ``Fig. 1``: the paper's Figure 1 read off the plot, about +-0.2 (paper-notes 1.3) [VERIFIED-README figure;
  numbers approximate]; shown with a leading ``~``. The M-R50 points equal table 1.1 exactly.
- ``SOTA``: the state-of-the-art table of the paper summary (seed/gol-paper-summary.md), LVIS v1, Mask R-CNN R50.
- ``EQLv2``, ``APA``, ``FRACAL``: the methods after GOL (``experiment=beyond``), as their authors report them on
  LVIS v1 val; each row's citation names the setting, where it differs from gol's cell (backbone, baseline).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

PAPER_METRICS: tuple[str, ...] = ("AP", "APr", "APc", "APf", "APb")


@dataclass(frozen=True)
class Published:
    """One published result row.

    Attributes:
        key: stable identifier used by the table specs, e.g. ``"readme-1.1/gumbel"``.
        method: the row name in the source.
        values: metric name (``PAPER_METRICS``) -> value in percent.
        source: short tag shown in tables (``"README 1.1"``).
        citation: where the number was read, with its verification tag.
        approximate: True when the value was read off a plot.
    """

    key: str
    method: str
    values: Mapping[str, float]
    source: str
    citation: str
    approximate: bool = False

    def __post_init__(self) -> None:
        unknown = sorted(set(self.values) - set(PAPER_METRICS))
        if unknown:
            raise ValueError(f"published row {self.key} has metrics {unknown}; expected only {PAPER_METRICS}")
        object.__setattr__(self, "values", MappingProxyType(dict(self.values)))


_README_11 = (
    "paper-notes 1.1: official README activation table, Mask R-CNN R50-FPN, LVIS v1, 1x, no RFS [VERIFIED-README]"
)
_README_12 = "paper-notes 1.2: official README released GOL models, 2x, RFS, normalised mask [VERIFIED-README]"
_FIG_1 = "paper-notes 1.3: paper Figure 1 read off the plot, +-0.2, LVIS v1, 1x [VERIFIED-README figure; approximate]"
_SOTA = "seed/gol-paper-summary.md: state-of-the-art table, LVIS v1, Mask R-CNN R50"
_EQLV2 = "tztztztztz/eqlv2 README: EQLv2, Mask R-CNN R50-FPN, 1x, random sampling, mmdetection 2.3, LVIS v1 val"
_APA = (
    "kostas1515/AGLU mmdetection_v3.2/README.md (Alexandridis et al., ECCV 2024): GOL's Gumbel DropLoss classifier "
    "on an ImageNet-pretrained SE-R50 whose SE gates are APA and whose ReLUs are AGLU, RFS, 2x, LVIS v1 val (R101: "
    "30.7 / 23.6); gol's cell puts the learnable activation on the classification logits instead"
)
_FRACAL = (
    "kostas1515/FRACAL evaluation logs: FRACAL on a strong Mask R-CNN R50 baseline (RFS, normalised heads, 2x), "
    "LVIS v1 val, about +-0.1 [approximate]; gol's cell calibrates GOL"
)


def _row(
    key: str, method: str, values: Mapping[str, float], source: str, citation: str, approximate: bool = False
) -> Published:
    return Published(key=key, method=method, values=values, source=source, citation=citation, approximate=approximate)


def _five(ap: float, apr: float, apc: float, apf: float, apb: float) -> dict[str, float]:
    return {"AP": ap, "APr": apr, "APc": apc, "APf": apf, "APb": apb}


def _figure(ap: float, apr: float) -> dict[str, float]:
    return {"AP": ap, "APr": apr}


_ROWS: tuple[Published, ...] = (
    # 1.1: activation comparison, R50.
    _row("readme-1.1/sigmoid", "Sigmoid", _five(16.4, 0.8, 12.7, 27.3, 17.2), "README 1.1", _README_11),
    _row("readme-1.1/softmax", "Softmax", _five(15.2, 0.0, 10.6, 26.9, 16.1), "README 1.1", _README_11),
    _row("readme-1.1/gumbel", "Gumbel", _five(19.0, 4.9, 16.8, 27.6, 19.1), "README 1.1", _README_11),
    # 1.2: released GOL models.
    _row("readme-1.2/gol-r50-v0.5", "GOL_r50_v0.5", _five(29.5, 22.5, 31.3, 30.1, 28.2), "README 1.2", _README_12),
    _row("readme-1.2/gol-r50-v1", "GOL_r50_v1", _five(27.7, 21.4, 27.7, 30.4, 27.5), "README 1.2", _README_12),
    _row("readme-1.2/gol-r101-v1", "GOL_r101_v1", _five(29.0, 22.8, 29.0, 31.7, 29.2), "README 1.2", _README_12),
    # 1.3: Figure 1, Softmax vs Gumbel per detector (AP and APr only). M-R50 equals table 1.1 exactly.
    _row("fig-1/m-r50/softmax", "Softmax M-R50", _figure(15.2, 0.0), "Fig. 1", _FIG_1),
    _row("fig-1/m-r50/gumbel", "Gumbel M-R50", _figure(19.0, 4.9), "Fig. 1", _FIG_1),
    _row("fig-1/m-r101/softmax", "Softmax M-R101", _figure(16.7, 0.5), "Fig. 1", _FIG_1, approximate=True),
    _row("fig-1/m-r101/gumbel", "Gumbel M-R101", _figure(20.6, 6.4), "Fig. 1", _FIG_1, approximate=True),
    _row("fig-1/m-x101/softmax", "Softmax M-X101", _figure(18.6, 0.6), "Fig. 1", _FIG_1, approximate=True),
    _row("fig-1/m-x101/gumbel", "Gumbel M-X101", _figure(22.6, 5.9), "Fig. 1", _FIG_1, approximate=True),
    _row("fig-1/c-r101/softmax", "Softmax C-R101", _figure(18.8, 0.6), "Fig. 1", _FIG_1, approximate=True),
    _row("fig-1/c-r101/gumbel", "Gumbel C-R101", _figure(22.9, 6.6), "Fig. 1", _FIG_1, approximate=True),
    _row("fig-1/h-r101/softmax", "Softmax H-R101", _figure(19.9, 0.6), "Fig. 1", _FIG_1, approximate=True),
    _row("fig-1/h-r101/gumbel", "Gumbel H-R101", _figure(23.3, 6.1), "Fig. 1", _FIG_1, approximate=True),
    # Seed summary: state of the art on LVIS v1, R50.
    _row("sota/rfs", "RFS", _five(23.7, 13.3, 23.0, 29.0, 24.7), "SOTA", _SOTA),
    _row("sota/seesaw", "Seesaw", _five(26.4, 19.5, 26.1, 29.7, 27.6), "SOTA", _SOTA),
    _row("sota/loce", "LOCE", _five(26.6, 18.5, 26.2, 30.7, 27.4), "SOTA", _SOTA),
    _row("sota/gol", "GOL (ours)", _five(27.7, 21.4, 27.7, 30.4, 27.5), "SOTA", _SOTA),
    # After GOL (experiment=beyond).
    _row("beyond/eqlv2", "EQLv2", {"AP": 23.7, "APr": 14.9, "APc": 22.8, "APf": 28.6}, "EQLv2", _EQLV2),
    _row("beyond/apa-gol", "APA backbone + GOL (SE-R50)", _figure(29.2, 21.8), "APA", _APA),
    _row("beyond/fracal", "FRACAL (R50)", _figure(28.5, 23.0), "FRACAL", _FRACAL, approximate=True),
)

PUBLISHED: Mapping[str, Published] = MappingProxyType({row.key: row for row in _ROWS})


def published(key: str) -> Published:
    """The published row `key`; a one-line KeyError lists the known keys."""
    try:
        return PUBLISHED[key]
    except KeyError:
        raise KeyError(f"no published row {key!r}; known: {', '.join(PUBLISHED)}") from None
