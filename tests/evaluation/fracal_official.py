"""Transcriptions of the official FRACAL code (kostas1515/FRACAL, CVPR 2025), the references gol's calibration is
tested against. Official conventions: categories 1..K in the statistics files, background is the LAST logit column
of a softmax head (gol: column 0)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def official_box_statistics(images: list[dict], annotations: list[dict]) -> dict[str, np.ndarray]:
    """stat_files/get_statistics.py (the LVIS branch): normalised xmin, ymin, width, height and category per box."""
    by_image = {im["id"]: im for im in images}
    xmin, ymin, width, height, category = [], [], [], [], []
    for ann in annotations:
        img = by_image[ann["image_id"]]
        w = img["width"]
        h = img["height"]
        x0 = ann["bbox"][0] / w
        y0 = ann["bbox"][1] / h
        xmin.append(x0)
        ymin.append(y0)
        width.append(ann["bbox"][2] / w)
        height.append(ann["bbox"][3] / h)
        category.append(ann["category_id"])
    return {
        "xmin": np.array(xmin),
        "ymin": np.array(ymin),
        "width": np.array(width),
        "height": np.array(height),
        "category": np.array(category),
    }


def official_fractal_dimensions(gt: dict[str, np.ndarray], num_classes: int, dims: int = 64) -> list[float]:
    """stat_files/calculate_fractality.py ``main`` with ``--variant box_dim`` (its default): ``calculate_fract`` per grid
    size and the per-class fit. The fit is ``scipy.optimize.curve_fit`` of ``Df * x + A``, i.e. the ordinary
    least-squares line, which ``np.polyfit(x, y, 1)`` computes (scipy is not a dependency here)."""
    cx = np.array(gt["xmin"]) + np.array(gt["width"]) / 2
    cy = np.array(gt["ymin"]) + np.array(gt["height"]) / 2
    gt_categories = np.array(gt["category"]) - 1
    frequencies = np.bincount(gt_categories, minlength=num_classes)

    def calculate_fract(dim: int) -> np.ndarray:
        step = 1 / dim
        gt_loc_bias = np.zeros((dim, dim, num_classes))
        for j in range(dim):
            for i in range(dim):
                dimx = [i * step, (i + 1) * step]
                maskx = (cx >= dimx[0]) & (cx < dimx[1])
                dimy = [j * step, (j + 1) * step]
                masky = (cy >= dimy[0]) & (cy < dimy[1])
                mask_final = maskx & masky
                g = gt_categories[mask_final]
                bins = np.bincount(g, minlength=num_classes)
                gt_loc_bias[j, i, :] = bins
        return (gt_loc_bias > 0).sum(axis=0).sum(axis=0)  # variant == 'box_dim'

    grid_size = dims
    all_dims = np.arange(grid_size) + 1
    boxes = [calculate_fract(int(d)) for d in all_dims]
    fractality: list[float] = []
    for k in range(num_classes):
        n = [boxes[i][k] for i in np.arange(grid_size)]
        cuttof_ponts = (frequencies[k]) >= all_dims * all_dims
        if frequencies[k] < 4:
            fractality.append(1)
        else:
            slope = np.polyfit(np.log(all_dims)[cuttof_ponts], np.log(n)[cuttof_ponts], 1)[0]
            if slope < 1:
                fractality.append(1)
            else:
                fractality.append(float(slope))
    return fractality


def official_base10_frequency(images: list[dict], annotations: list[dict], num_categories: int) -> np.ndarray:
    """stat_files/get_frequency.py, the ``base10`` column: -log10 of the fraction of the file's images holding each
    category id 0..K (index 0 is the unused id 0, dropped by the head)."""
    per_image: dict[int, list[int]] = {im["id"]: [] for im in images}
    for ann in annotations:
        per_image[ann["image_id"]].append(ann["category_id"])
    final = np.stack([np.bincount(np.array(c, dtype=int), minlength=num_categories + 1) for c in per_image.values()])
    doc_freq = (final > 0).sum(axis=0)
    pobs = doc_freq / final.shape[0]
    with np.errstate(divide="ignore"):
        return -np.log10(pobs)


def official_fracal_weights(base10: np.ndarray, num_categories: int, use_sigmoid: bool) -> torch.Tensor:
    """mmdet/models/roi_heads/bbox_heads/fracal_bbox_head.py ``get_fracal_weights(variant='base10')`` (the CSV column
    passed in, ``device='cuda'`` dropped, float64 kept)."""
    fg_weights = base10[1:]
    freqs = np.ones(num_categories) * 300
    ptarget = -np.log10(freqs.sum() / freqs)
    fg_weights = fg_weights + ptarget
    if use_sigmoid is False:
        fg_weights = fg_weights.tolist() + [0.0]  # noqa: RUF005  (as the official code)
    return torch.tensor(fg_weights, dtype=torch.float64).unsqueeze(0)


def official_fracal_scores(
    cls_score: torch.Tensor,
    wy: torch.Tensor,
    fractal_dims: list[float],
    fractal_l: float,
    use_sigmoid: bool,
    get_activation=None,
) -> torch.Tensor:
    """fracal_bbox_head.py ``__init__`` (the fractal weights) and ``_predict_by_feat_single`` (the scores).

    ``use_sigmoid``: the ``custom_cls_channels`` branch of a sigmoid/Gumbel loss (K logits, ``get_activation`` its
    probability); otherwise the softmax branch over K + 1 logits, background last.
    """
    fractal_weights = list(fractal_dims)
    if use_sigmoid is False:
        fractal_weights = fractal_weights + [1.0]  # noqa: RUF005  (as the official code)
    fractal_weights_t = torch.tensor(fractal_weights, dtype=torch.float64)
    num_classes = len(fractal_dims)
    weights = wy
    if use_sigmoid:
        fw = fractal_weights_t**fractal_l
        fw = fw / fw.sum()
        fractal_prob = -torch.log10(fw) + torch.log10(torch.tensor(1 / num_classes, dtype=torch.float64)).item()
        scores = get_activation(cls_score) * (get_activation(cls_score + weights + fractal_prob))
    else:
        scores = F.softmax(cls_score + weights, dim=-1)
    if use_sigmoid is False:
        scores = scores / (fractal_weights_t**fractal_l)
        scores /= scores.sum(dim=1, keepdim=True)
    return scores
