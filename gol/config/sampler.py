"""Schemas of the ``sampler`` group: partials called by the engine as ``factory(dataset=train, seed=seed)``."""

from __future__ import annotations

from dataclasses import dataclass

GROUP = "sampler"


@dataclass
class RandomSamplerConf:
    """A fresh permutation of the training images each epoch."""

    _target_: str = "gol.data.samplers.RandomSampler"
    _partial_: bool = True


@dataclass
class RepeatFactorSamplerConf:
    """Repeat Factor Sampling (LVIS paper App. B.2); ``rounding`` is detectron2's "stochastic" or mmdet's "ceil"."""

    _target_: str = "gol.data.samplers.RepeatFactorSampler"
    _partial_: bool = True
    threshold: float = 1e-3  # t, LVIS paper; mmdet oversample_thr / detectron2 REPEAT_THRESHOLD
    rounding: str = "stochastic"


SCHEMAS = {"random_schema": RandomSamplerConf, "rfs_schema": RepeatFactorSamplerConf}
