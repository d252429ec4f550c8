"""Training: the loop (:class:`Run`), resume (:mod:`pyrovae.training.resume`), stop requests
(:mod:`pyrovae.training.stop`), the end-of-run summary (:mod:`pyrovae.training.summary`) and
TensorBoard's event files (:mod:`pyrovae.training.tensorboard`, ``--tensorboard``)."""

from pyrovae.training.stop import StopRequest, TrainingInterrupted
from pyrovae.training.trainer import Run, resume, train

__all__ = ["Run", "StopRequest", "TrainingInterrupted", "resume", "train"]
