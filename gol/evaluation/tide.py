"""Where AP goes, per frequency group: hotcoco's TIDE breakdown (Bolya et al. 2020) of the evaluated detections.

For each group (all categories, then r, c and f), the evaluation is restricted to the group's categories and
hotcoco's ``tide_errors`` reports, at IoU 0.5 (foreground) and 0.1 (background), how much AP50 each error type costs:
fixing it alone would raise AP50 by that much. ``Cls``: right box, wrong category; ``Loc``: right category, box
between 0.1 and 0.5 IoU; ``Both``: both wrong; ``Dupe``: a second detection of an already matched object; ``Bkg``:
detection of nothing; ``Miss``: objects never detected. ``AP50`` is the group's AP50, TIDE's baseline.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gol.evaluation.ground_truth import FREQUENCIES, GroundTruth
from gol.evaluation.hotcoco_engine import quietly

ERROR_TYPES = ("Cls", "Loc", "Both", "Dupe", "Bkg", "Miss")
GROUPS = ("all", *FREQUENCIES)


def error_breakdown(evaluator_for: Any, gt: GroundTruth) -> dict[str, dict[str, float]]:
    """{group: {AP50, Cls, Loc, Both, Dupe, Bkg, Miss}} from fresh hotcoco evaluators (``evaluator_for()``) of one
    IoU type; a group without categories is left out."""
    members = {"all": np.arange(gt.num_categories), **dict(zip(FREQUENCIES, gt.frequency_groups()))}
    out: dict[str, dict[str, float]] = {}
    for group in GROUPS:
        if members[group].size == 0:
            continue
        evaluator = evaluator_for()
        params = evaluator.params
        params.cat_ids = gt.category_ids[members[group]].tolist()
        evaluator.params = params
        quietly(evaluator.run)
        tide = evaluator.tide_errors(pos_thr=0.5, bg_thr=0.1)
        out[group] = {"AP50": float(tide["ap_base"]), **{k: float(tide["delta_ap"][k]) for k in ERROR_TYPES}}
    return out
