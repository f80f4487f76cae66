"""Optimisers (SGD, Adam, AdamW, RMSprop, Adagrad, Adadelta, Adamax, NAdam, RAdam, ASGD) and learning-rate schedules, with PyTorch's update rules.

>>> import minipool as mp
>>> net = mp.nn.Linear(4, 2)
>>> opt = mp.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
>>> sched = mp.optim.lr_scheduler.StepLR(opt, step_size=10)
>>> opt.param_groups[0]["lr"]
0.1
"""
from minipool.optim import lr_scheduler  # noqa: F401
from minipool.optim.adam import Adam, AdamW  # noqa: F401
from minipool.optim.lr_scheduler import CosineAnnealingLR, LRScheduler, OneCycleLR, StepLR  # noqa: F401
from minipool.optim.optimizer import Optimizer  # noqa: F401
from minipool.optim.sgd import SGD  # noqa: F401
from minipool.optim.rmsprop import RMSprop  # noqa: F401
from minipool.optim.lr_scheduler import ExponentialLR, LambdaLR, MultiStepLR, ReduceLROnPlateau  # noqa: F401

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "lr_scheduler", "LRScheduler", "StepLR",
           "CosineAnnealingLR", "OneCycleLR"]
__all__ += ["RMSprop", "MultiStepLR", "ExponentialLR", "LambdaLR", "ReduceLROnPlateau"]
from minipool.optim.adaptive import ASGD, Adadelta, Adagrad, Adamax, NAdam, RAdam  # noqa: F401
__all__ += ["Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam", "ASGD"]
from minipool.optim.lr_scheduler import (ChainedScheduler, ConstantLR, CosineAnnealingWarmRestarts,  # noqa: F401
                                         CyclicLR, LinearLR, MultiplicativeLR, PolynomialLR,
                                         SequentialLR)
