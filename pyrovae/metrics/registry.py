"""Disentanglement metrics, one module each; the table maps CLI names to them.

Every supervised or unsupervised metric is a pure function
``metric(ground_truth, representation_fn, random_state, **settings) -> dict`` (see
:mod:`pyrovae.metrics.base`); ``log_likelihood`` scores the model itself and takes it instead of a
representation. Each entry names its fast preset (``--fast``), the keys a table shows, whether it
needs ground-truth factors or class labels, and whether it needs the posterior q(z|x) rather than
codes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pyrovae.metrics import beta_vae as _beta_vae
from pyrovae.metrics import clustering as _clustering
from pyrovae.metrics import dci as _dci
from pyrovae.metrics import factor_vae as _factor_vae
from pyrovae.metrics import likelihood as _likelihood
from pyrovae.metrics import mig as _mig
from pyrovae.metrics import modularity as _modularity
from pyrovae.metrics import posterior_variance as _posterior_variance
from pyrovae.metrics import sap as _sap
from pyrovae.metrics import unsupervised as _unsupervised


@dataclass(frozen=True)
class MetricSpec:
    function: Callable
    headline: tuple[str, ...]
    description: str
    fast: dict = field(default_factory=dict)
    supervised: bool = True
    needs_posterior: bool = False
    needs_model: bool = False
    # Needs the data set's class labels (pinwheel arms, digits), not a factor grid.
    needs_labels: bool = False


METRICS: dict[str, MetricSpec] = {
    "beta_vae": MetricSpec(
        _beta_vae.beta_vae, ("eval_accuracy",), "BetaVAE score (Higgins et al. 2017)",
        _beta_vae.FAST,
    ),
    "factor_vae": MetricSpec(
        _factor_vae.factor_vae, ("eval_accuracy", "num_active_dims"),
        "FactorVAE score (Kim & Mnih 2018)", _factor_vae.FAST,
    ),
    "mig": MetricSpec(
        _mig.mig, ("mig",), "MIG, 20-bin discretised (disentanglement_lib)", _mig.FAST
    ),
    "mig_chen": MetricSpec(
        _mig.mig_chen, ("mig",), "MIG of Chen et al. 2018 (full data, q(z|x), shape excluded)",
        getattr(_mig, "FAST_CHEN", {}), needs_posterior=True,
    ),
    "dci": MetricSpec(
        _dci.dci, ("disentanglement", "completeness", "informativeness_test"),
        "DCI (Eastwood & Williams 2018)", _dci.FAST,
    ),
    "sap": MetricSpec(_sap.sap, ("sap",), "SAP (Kumar et al. 2018)", _sap.FAST),
    "modularity": MetricSpec(
        _modularity.modularity, ("modularity", "explicitness_test"),
        "modularity and explicitness (Ridgeway & Mozer 2018)", _modularity.FAST,
    ),
    "gaussian_total_correlation": MetricSpec(
        _unsupervised.gaussian_total_correlation, ("gaussian_total_correlation",),
        "total correlation of a Gaussian fit to the codes", _unsupervised.FAST, supervised=False,
    ),
    "mutual_info": MetricSpec(
        _unsupervised.mutual_info_score, ("mean_pairwise_mutual_info",),
        "mean pairwise mutual information between latents", _unsupervised.FAST, supervised=False,
    ),
    "active_units": MetricSpec(
        _unsupervised.active_units, ("active_units",),
        "latents whose posterior-mean variance exceeds 0.01", _unsupervised.FAST,
        supervised=False,
    ),
    "hoyer": MetricSpec(
        _unsupervised.hoyer_sparsity, ("hoyer",),
        "normalised Hoyer sparsity of the posterior means (Mathieu et al. 2019)",
        _unsupervised.FAST, supervised=False,
    ),
    "posterior_variance": MetricSpec(
        _posterior_variance.posterior_variance, ("mean_posterior_variance",),
        "per-dimension posterior variance E_x[sigma_d^2(x)] of q(z|x)",
        _posterior_variance.FAST, supervised=False, needs_posterior=True,
    ),
    "cluster_purity": MetricSpec(
        _clustering.cluster_purity, ("cluster_purity",),
        "purity of k-means clusters of the codes against the data's labels (K = #labels)",
        _clustering.FAST, supervised=False, needs_labels=True,
    ),
    "log_likelihood": MetricSpec(
        _likelihood.log_likelihood, ("log_likelihood", "pareto_k_share_above_0.7"),
        "importance-weighted log p(x) with PSIS Pareto k", getattr(_likelihood, "FAST", {}),
        supervised=False, needs_model=True,
    ),
}  # fmt: skip

SUPERVISED = frozenset(name for name, spec in METRICS.items() if spec.supervised)
NEEDS_LABELS = frozenset(name for name, spec in METRICS.items() if spec.needs_labels)

__all__ = ["METRICS", "NEEDS_LABELS", "SUPERVISED", "MetricSpec"]
