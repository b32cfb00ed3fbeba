"""Training: ``train(TrainConfig(...))`` turns a data source into a run directory.

>>> from pocketvision.train import TrainConfig, train
>>> summary = train(TrainConfig(data="digits", model="lenet5", epochs=2, out="runs/x"))
"""

from pocketvision.train.config import DEFAULT_MODEL, TrainConfig
from pocketvision.train.loop import StopTraining, evaluate_set, train

__all__ = ["DEFAULT_MODEL", "StopTraining", "TrainConfig", "evaluate_set", "train"]
