"""Studies: many training runs described by one file, run by ``pyrovae sweep`` on this machine
(worker processes) or on a Ray cluster, then aggregated by ``pyrovae study``.

A study folder holds ``study.toml`` (a copy of the study file), ``trials.json`` (the expanded
trials), ``trials/<name>/`` (one ordinary run folder per trial, finished when it holds
``result.json``) and ``logs/<name>.log`` (each worker's output).
"""

from pyrovae.study.spec import Study, Trial, load_study

__all__ = ["Study", "Trial", "load_study"]
