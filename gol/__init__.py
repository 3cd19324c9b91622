"""gol: ablations of classification activations and losses for long-tailed instance segmentation."""

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())
