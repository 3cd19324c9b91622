"""`DataSource`: what ``instantiate(cfg.dataset)`` returns, and the builders the dataset configs call.

Shape shorthand: a batch is B images (3, H_i, W_i) uint8 and B target dicts (see ``gol.data.targets``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from gol.data.category_stats import compare_with_json_counts
from gol.data.embedded import TRAIN_JSON, VAL_JSON, EmbeddedParams, ensure_embedded
from gol.data.image_files import VERSIONS, Version
from gol.data.lvis_dataset import LVISDetection
from gol.data.stats import CategoryStats
from gol.data.targets import Target
from gol.data.transforms import Compose, RandomHorizontalFlip
from gol.data.validation import DataFormatError, validate_sizes

log = logging.getLogger(__name__)

TRAIN_FOLDER = "train2017"  # where LVIS records that only carry file_name live (v0.5 train, COCO 2017 layout)
VAL_FOLDER = "val2017"


@dataclass(frozen=True)
class DataSource:
    """A train/val pair with the class statistics of train and the resize settings the model applies.

    Attributes:
        train, val: datasets yielding ``(image, target)``; ``target["image_id"]`` is the dataset's image id.
        stats: class statistics of ``train`` (handed to the losses).
        val_annotation_file: LVIS-format JSON of ``val`` for lvis-api evaluation.
        train_sizes: shorter-side lengths drawn per training image (multi-scale); test_size: the test one;
        max_size: cap on the longer side. The resize itself runs inside the model.
    """

    train: LVISDetection
    val: LVISDetection
    stats: CategoryStats
    val_annotation_file: Path
    train_sizes: tuple[int, ...]
    test_size: int
    max_size: int


def collate(batch: Sequence[tuple[Tensor, Target]]) -> tuple[list[Tensor], list[Target]]:
    """DataLoader ``collate_fn`` for detection: images of different sizes stay a list, as torchvision expects."""
    images = [image for image, _ in batch]
    targets = [target for _, target in batch]
    return images, targets


def _build(
    *,
    version: Version,
    train_ann: Path,
    val_ann: Path,
    image_root: Path,
    train_sizes: Sequence[int],
    test_size: int,
    max_size: int,
    flip_prob: float,
    cache_dir: Path | None,
) -> DataSource:
    validate_sizes(train_sizes=train_sizes, test_size=test_size, max_size=max_size, flip_prob=flip_prob)
    train = LVISDetection(
        annotation_file=train_ann,
        image_root=image_root,
        version=version,
        split_folder=TRAIN_FOLDER,
        transforms=Compose([RandomHorizontalFlip(flip_prob)]),
        drop_unannotated=True,
        federated=False,
        cache_dir=cache_dir,
    )
    val = LVISDetection(
        annotation_file=val_ann,
        image_root=image_root,
        version=version,
        split_folder=VAL_FOLDER,
        transforms=None,
        drop_unannotated=False,
        federated=True,
        cache_dir=cache_dir,
    )
    if val.category_ids != train.category_ids:
        raise DataFormatError(
            f"{val_ann} and {train_ann} list different categories ({val.num_classes} vs {train.num_classes}); "
            "labels must mean the same in both splits"
        )
    stats = train.category_stats()
    compare_with_json_counts(stats, train.categories, source=str(train_ann))
    groups = {g: sum(f == g for f in stats.frequency) for g in ("r", "c", "f")}
    log.info("train %s, val %s, K=%d, groups %s", train, val, stats.num_classes, groups)
    return DataSource(
        train=train,
        val=val,
        stats=stats,
        val_annotation_file=Path(val_ann),
        train_sizes=tuple(int(s) for s in train_sizes),
        test_size=int(test_size),
        max_size=int(max_size),
    )


def build_lvis(
    *,
    version: str,
    train_ann: str,
    val_ann: str,
    image_root: str,
    train_sizes: Sequence[int],
    test_size: int,
    max_size: int,
    flip_prob: float,
    cache_dir: str | None,
) -> DataSource:
    """LVIS v1 or v0.5 from its annotation JSONs and the COCO image root (holding train2017/ and val2017/); with a
    ``cache_dir``, each annotation file is parsed once per node and memory-mapped (``gol.data.table_cache``); None
    parses it in this process."""
    if version not in VERSIONS:
        raise DataFormatError(f"unknown LVIS version {version!r}; expected one of {list(VERSIONS)}")
    return _build(
        version=version,  # type: ignore[arg-type]  # checked above
        train_ann=Path(train_ann),
        val_ann=Path(val_ann),
        image_root=Path(image_root),
        train_sizes=train_sizes,
        test_size=test_size,
        max_size=max_size,
        flip_prob=flip_prob,
        cache_dir=None if cache_dir is None else Path(cache_dir),
    )


def build_embedded(
    *,
    root: str,
    seed: int,
    num_shapes: int,
    num_colours: int,
    num_textures: int,
    num_train: int,
    num_val: int,
    max_images_per_category: int,
    min_images_per_category: int,
    image_size: int,
    max_objects: int,
    train_sizes: Sequence[int],
    test_size: int,
    max_size: int,
    flip_prob: float,
    cache_dir: str | None,
) -> DataSource:
    """The embedded dataset of these parameters, generated under ``root`` on first use and reused afterwards (its
    annotation tables cached in ``cache_dir`` as LVIS's)."""
    validate_sizes(train_sizes=train_sizes, test_size=test_size, max_size=max_size, flip_prob=flip_prob)
    params = EmbeddedParams(
        seed=seed,
        num_shapes=num_shapes,
        num_colours=num_colours,
        num_textures=num_textures,
        num_train=num_train,
        num_val=num_val,
        max_images_per_category=max_images_per_category,
        min_images_per_category=min_images_per_category,
        image_size=image_size,
        max_objects=max_objects,
    )
    folder = ensure_embedded(Path(root), params)
    return _build(
        version="v1",
        train_ann=folder / TRAIN_JSON,
        val_ann=folder / VAL_JSON,
        image_root=folder,
        train_sizes=train_sizes,
        test_size=test_size,
        max_size=max_size,
        flip_prob=flip_prob,
        cache_dir=None if cache_dir is None else Path(cache_dir),
    )
