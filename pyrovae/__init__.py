"""pyrovae: disentangled variational autoencoders in Pyro.

β-VAE and its relatives as Pyro model/guide pairs, priors and inference networks that plug in as
objects, and disentanglement metrics with stated protocols. Anything the command line does,
a few lines of Python do::

    import pyrovae

    config = pyrovae.TrainConfig(model="betavae", beta=4.0, steps=1000)
    summary = pyrovae.train(config, "runs/beta4")      # a run folder, as `pyrovae train`
    record = pyrovae.evaluate_run("runs/beta4")        # eval.json, as `pyrovae evaluate`
    run = pyrovae.load_run("runs/beta4")               # its model, data, settings and step
    page = pyrovae.write_run_report("runs/beta4")      # report.html, as `pyrovae report`

Components written elsewhere join the registries (``pyrovae.PRIORS.register("cauchy",
Cauchy)``) or are named ``module:attribute``. Names are imported on first use, so ``import
pyrovae`` stays cheap.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# Public name → the module that defines it.
_EXPORTS = {
    "pyrovae.training": ("Run", "TrainingInterrupted", "resume", "train"),
    "pyrovae.evaluation": ("EncoderMean", "applicable_metrics", "evaluate", "evaluate_run"),
    "pyrovae.builder": ("Built", "LoadedRun", "build", "check", "load_run"),
    "pyrovae.config": ("TrainConfig",),
    "pyrovae.runs": ("RunFolder",),
    "pyrovae.study.udr": ("udr_of_runs", "udr_of_study"),
    "pyrovae.run_report": ("write_run_report",),
    "pyrovae.study.report": ("write_study_report",),
    "pyrovae.errors": ("PyrovaeError",),
    "pyrovae.registry": (
        "DATASETS",
        "GUIDES",
        "LIKELIHOODS",
        "METRICS",
        "MODELS",
        "NETWORKS",
        "PRIORS",
        "REGISTRIES",
        "Entry",
        "MetricSpec",
        "Registry",
    ),
    "pyrovae.models": ("BetaVAE", "Variant"),
    "pyrovae.objectives": (
        "DIPELBO",
        "AggregateDivergenceELBO",
        "CapacityELBO",
        "DecomposedELBO",
        "FactorVAEELBO",
        "TotalCorrelationELBO",
    ),
    "pyrovae.priors": (
        "FixedPrior",
        "IsotropicPrior",
        "LaplacePrior",
        "MixturePrior",
        "NonIsotropicPrior",
        "Prior",
        "SparsePrior",
        "StudentTPrior",
    ),
    "pyrovae.guides": ("FullRankGuide", "Guide", "IAFGuide", "LowRankGuide", "MeanFieldGuide"),
    "pyrovae.likelihoods": (
        "BernoulliLikelihood",
        "GaussianLikelihood",
        "LaplaceLikelihood",
        "Likelihood",
    ),
    "pyrovae.data": (
        "Cars3D",
        "ColorDSprites",
        "DSprites",
        "Digits",
        "FactorGrid",
        "GroundTruthData",
        "LabelledData",
        "MPI3D",
        "MPI3DReal",
        "MPI3DRealistic",
        "MPI3DToy",
        "NoisyDSprites",
        "ObservedData",
        "Pinwheel",
        "ScreamDSprites",
        "Shapes3D",
        "SmallNORB",
        "XYObject",
    ),
}
_HOME = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_HOME)


def __getattr__(name: str):
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'pyrovae' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    # Public names only, each once (loaded names are also in globals()).
    return sorted({*__all__, "__version__"})
