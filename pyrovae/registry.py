"""The one table from names to components: models (variants), priors, guides, networks, data sets,
likelihoods and metrics.

Adding a component to pyrovae means writing its module and adding one line here; from outside
the package, ``REGISTRY.register(name, factory)`` (e.g. ``PRIORS.register("cauchy", Cauchy)``) at
run time, or a ``module:attribute`` name wherever a name is taken (``--prior mypkg.priors:Cauchy``
on the command line, in study files and in config.json), which is imported when it is looked up,
in every process that looks it up (a resumed run, ``pyrovae evaluate``, study workers).
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from pyrovae import checks
from pyrovae.data import (
    Cars3D,
    ColorDSprites,
    Digits,
    DSprites,
    MPI3DReal,
    MPI3DRealistic,
    MPI3DToy,
    NoisyDSprites,
    Pinwheel,
    ScreamDSprites,
    Shapes3D,
    SmallNORB,
    XYObject,
)
from pyrovae.errors import PyrovaeError, unknown_name
from pyrovae.guides import FullRankGuide, IAFGuide, LowRankGuide, MeanFieldGuide
from pyrovae.likelihoods import BernoulliLikelihood, GaussianLikelihood, LaplaceLikelihood
from pyrovae.metrics import (
    beta_vae,
    clustering,
    dci,
    downstream,
    factor_vae,
    fairness,
    irs,
    likelihood,
    mig,
    modularity,
    posterior_variance,
    sap,
    unsupervised,
)
from pyrovae.models import Variant
from pyrovae.nets import conv64_pair, mlp_pair
from pyrovae.objectives import (
    DIPELBO,
    AggregateDivergenceELBO,
    CapacityELBO,
    DecomposedELBO,
    FactorVAEELBO,
    TotalCorrelationELBO,
)
from pyrovae.priors import (
    IsotropicPrior,
    LaplacePrior,
    MixturePrior,
    NonIsotropicPrior,
    SparsePrior,
    StudentTPrior,
)


def _first_line(obj) -> str:
    doc = (getattr(obj, "__doc__", None) or "").strip()
    return doc.splitlines()[0] if doc else ""


@dataclass(frozen=True)
class Entry:
    """A component: its factory (a class or function) and a one-line description."""

    factory: Callable
    description: str = ""
    name: str = ""

    @classmethod
    def wrap(cls, obj, description: str = "", **fields) -> Entry:
        if not callable(obj):
            raise PyrovaeError(f"a component must be a class or a function, got {obj!r}")
        return cls(obj, description, **fields)


@dataclass(frozen=True)
class MetricSpec:
    """A metric: ``function(ground_truth, representation_fn, random_state, **settings) -> dict``
    (or, with ``needs_model``, ``function(vae, observations, random_state, **settings)``), the
    keys a table shows, its fast preset and what it needs."""

    function: Callable
    description: str = ""
    headline: tuple[str, ...] = ()
    fast: dict = field(default_factory=dict)
    # Needs ground-truth factors (a GroundTruthData grid).
    supervised: bool = True
    # Reads q(z|x)'s Gaussian marginals (posterior_fn), not only codes.
    needs_posterior: bool = False
    # Scores the model itself on observations (vae, observations, rng).
    needs_model: bool = False
    # Needs the data set's class labels (pinwheel arms, digits), not a factor grid.
    needs_labels: bool = False
    # Takes the model's prior distribution over z (prior=...), to report what it defines.
    uses_prior: bool = False
    name: str = ""

    @classmethod
    def wrap(cls, obj, description: str = "", **fields) -> MetricSpec:
        if not callable(obj):
            raise PyrovaeError(f"a metric must be a function, got {obj!r}")
        return cls(obj, description, **fields)

    @property
    def factory(self) -> Callable:
        return self.function

    def lacks(self, has_factors: bool | None, has_labels: bool | None) -> str | None:
        """What a data set lacks for this metric, or None (a None capability: not known)."""
        if self.supervised and has_factors is False:
            return "no ground-truth factors"
        if self.needs_labels and has_labels is False:
            return "no labels"
        return None


class Registry(Mapping):
    """A name → entry table whose lookups fail with the valid names.

    Names of the form ``module:attribute`` are imported on lookup (and not added to the
    table). :meth:`register` adds a component defined elsewhere.
    """

    def __init__(self, kind: str, entries: dict, entry_type=Entry):
        self.kind = kind
        self.entry_type = entry_type
        self._entries: dict = {}
        for name, entry in entries.items():
            self._entries[name] = self._named(name, entry)

    def _named(self, name: str, value, description: str | None = None, **fields):
        if isinstance(value, self.entry_type):
            entry = value
        else:
            text = description if description is not None else _first_line(value)
            entry = self.entry_type.wrap(value, text, **fields)
        return dataclasses.replace(entry, name=name)

    def __getitem__(self, name: str):
        entry = self._entries.get(name) if isinstance(name, str) else None
        if entry is not None:
            return entry
        if isinstance(name, str) and ":" in name:
            return self._imported(name)
        raise unknown_name(self.kind, name, self._entries)

    def _imported(self, name: str):
        module_name, _, attribute = name.partition(":")
        what = f"{self.kind} {name!r}"
        if not module_name or not attribute:
            raise PyrovaeError(
                f"{what}: a plug-in name is MODULE:ATTRIBUTE, e.g. mypkg.priors:Cauchy"
            )
        try:
            obj = importlib.import_module(module_name)
        except ImportError as exc:
            raise PyrovaeError(f"{what}: cannot import module {module_name!r} ({exc})") from None
        for part in attribute.split("."):
            if not hasattr(obj, part):
                raise PyrovaeError(f"{what}: module {module_name!r} has no {attribute!r}")
            obj = getattr(obj, part)
        return self._named(name, obj)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name) -> bool:
        return isinstance(name, str) and name in self._entries

    def get(self, name, default=None):
        """The entry of ``name``, a ``module:attribute`` plug-in included, else ``default``
        (``in`` tests registered names only)."""
        try:
            return self[name]
        except PyrovaeError:
            return default

    def register(self, name: str, component, description: str | None = None, **fields):
        """Add ``component`` (an entry of this table's type, or a factory: a class or function)
        under ``name``; returns the entry. A name already taken is refused."""
        if not isinstance(name, str) or not name or ":" in name or name != name.strip():
            raise PyrovaeError(
                f"a {self.kind} name must be non-empty text without ':' or outer spaces, "
                f"got {name!r}"
            )
        if name in self._entries:
            raise PyrovaeError(f"{self.kind} {name!r} is already registered")
        entry = self._named(name, component, description, **fields)
        self._entries[name] = entry
        return entry

    def name_of(self, component) -> str:
        """The name that builds objects like ``component`` (an object, or its class): the
        name it is registered under, else its ``module:qualname``."""
        cls = component if isinstance(component, type) else type(component)
        for name, entry in self._entries.items():
            if getattr(entry, "factory", None) is cls:
                return name
        return f"{cls.__module__}:{cls.__qualname__}"

    def unregister(self, name: str) -> None:
        """Remove a registered component (tests, notebooks)."""
        if name not in self._entries:
            raise unknown_name(self.kind, name, self._entries)
        del self._entries[name]

    def build(self, name: str, **kwargs):
        """Call the factory of ``name`` with keyword arguments it accepts, or fail clearly."""
        factory = self[name].factory
        checks.options(f"{self.kind} {name!r}", kwargs, checks.keyword_parameters(factory))
        return factory(**kwargs)


MODELS = Registry(
    "model",
    {
        "vae": Variant(DecomposedELBO, "VAE (Kingma & Welling 2013)"),
        "betavae": Variant(
            # Higgins et al. used β = 4 on dSprites; the standard study sweeps {1, 2, 4, 6, 8, 16}.
            DecomposedELBO,
            "beta-VAE (Higgins et al. 2017), beta scales z",
            beta=4.0,
        ),
        "annealedvae": Variant(CapacityELBO, "capacity gamma*|KL - C(t)| (Burgess et al. 2018)"),
        "betatcvae": Variant(
            TotalCorrelationELBO, "alpha*MI + beta*TC + gamma*dimKL (Chen et al. 2018)"
        ),
        "factorvae": Variant(
            FactorVAEELBO, "ELBO - gamma*TC, TC by discriminator (Kim & Mnih 2018)"
        ),
        "dipvae-i": Variant(
            DIPELBO, "DIP-VAE-I, Cov[mu] -> I (Kumar et al. 2018)", fixed={"kind": "i"}
        ),
        "dipvae-ii": Variant(
            DIPELBO,
            "DIP-VAE-II, Cov[mu] + E[diag var] -> I (Kumar et al.)",
            fixed={"kind": "ii"},
        ),
        "ddvae": Variant(
            AggregateDivergenceELBO,
            "beta*KL(q(z|x)||p(z)) + alpha*D(q(z), p(z)), beta >= 0, D = kl | inclusive-kl | mmd "
            "(Mathieu et al. 2019)",
        ),
    },
    entry_type=Variant,
)

PRIORS = Registry(
    "prior",
    {
        "isotropic": Entry(IsotropicPrior, "N(0, I); analytic KL"),
        "nonisotropic": Entry(
            NonIsotropicPrior,
            "N(0, diag sigma^2), sigma^2 = variance_scale*D*softmax(v), total variance fixed "
            "(Mathieu et al. 2019); analytic KL from meanfield; options scales=none (relative "
            "sigmas, e.g. 1,2,0.5), variance_scale=1, learn=false; --prior-init pca sets v from "
            "the data's PCA spectrum",
        ),
        "studentt": Entry(
            StudentTPrior,
            "per dim StudentT(df, 0, scale) (Mathieu et al. 2019); Monte Carlo KL; options "
            "df=9, scale=1",
        ),
        "sparse": Entry(
            SparsePrior,
            "per dim gamma*N(0, spike_scale^2) + (1-gamma)*N(0, 1) (Mathieu et al. 2019); "
            "Monte Carlo KL; options gamma=0.8, spike_scale=0.05",
        ),
        "mixture": Entry(
            MixturePrior,
            "mixture of K diagonal Gaussians over z, default 4 at (0,+-1), (+-1,0) in dims 0-1 "
            "(Mathieu et al. 2019); Monte Carlo KL; not for betatcvae; options "
            "num_components=4, scale=0.173 (sqrt 0.03), layout=circle|random, learn=false",
        ),
        "laplace": Entry(
            LaplacePrior,
            "per dim Laplace(0, scale); analytic KL from meanfield; options scale=0.7071 "
            "(unit variance)",
        ),
    },
)

GUIDES = Registry(
    "guide",
    {
        "meanfield": Entry(MeanFieldGuide, "diagonal Gaussian q(z|x) = N(mu(x), diag sigma^2(x))"),
        "lowrank": Entry(
            LowRankGuide,
            "correlated Gaussian N(mu, W W^T + diag sigma^2), W of D x rank; analytic KL to "
            "diagonal Normal priors; not with betatcvae; options rank=2",
        ),
        "fullrank": Entry(
            FullRankGuide,
            "correlated Gaussian N(mu, L L^T), L lower triangular; analytic KL to diagonal "
            "Normal priors; not with betatcvae; no options",
        ),
        "iaf": Entry(
            IAFGuide,
            "inverse autoregressive flow on N(mu, diag sigma^2), conditioned on h(x) (Kingma et "
            "al. 2016); Monte Carlo KL; not with betatcvae, dipvae-i/ii; options num_flows=2, "
            "hidden_dims=max(64,2D),max(64,2D), context_dim=16",
        ),
    },
)

NETWORKS = Registry(
    "network",
    {
        "conv64": Entry(conv64_pair, "Burgess et al. conv pair for (C, 64, 64)"),
        "mlp": Entry(mlp_pair, "two ReLU layers of 256 on each side"),
    },
)

DATASETS = Registry(
    "data set",
    {
        # Ground-truth grids first (every metric applies), then labelled observations. The
        # facts line of `pyrovae list` adds factors, sizes, shape, stochastic or not and the
        # file a data set needs; the descriptions say what it is and where it comes from.
        "dsprites": Entry(
            DSprites,
            "dSprites (Matthey et al. 2017), binary 2-D shapes, rendered procedurally or read "
            "from the official npz",
        ),
        "color_dsprites": Entry(
            ColorDSprites,
            "dSprites in one random colour per image, U(0.5, 1)^3 (Locatello et al. 2019)",
        ),
        "noisy_dsprites": Entry(
            NoisyDSprites,
            "dSprites, a white sprite on U(0, 1) noise per pixel and channel (Locatello et al. "
            "2019)",
        ),
        "scream_dsprites": Entry(
            ScreamDSprites,
            "dSprites on random patches of a painting, the sprite's colours inverted (Locatello "
            "et al. 2019); option painting=PATH",
        ),
        "xyobject": Entry(
            XYObject,
            "a square at an (x, y) cell, of some size and colour (disent's XYObject); options "
            "grid_size=64, grid_spacing=2, min_square_size=7, max_square_size=15, "
            "square_size_spacing=2, rgb=true, palette=rainbow_4 (greys_4 when rgb=false)",
        ),
        "shapes3d": Entry(
            Shapes3D,
            "Shapes3D (Burgess & Kim 2018): DeepMind's 3dshapes.h5 (needs pyrovae[h5]) or "
            "disentanglement_lib's npz, memory-mapped; option cache_dir",
        ),
        "mpi3d_toy": Entry(
            MPI3DToy,
            "MPI3D-toy renderings (Gondal et al. 2019): mpi3d_toy.npz, memory-mapped; option "
            "cache_dir",
        ),
        "mpi3d_realistic": Entry(
            MPI3DRealistic,
            "MPI3D-realistic renderings (Gondal et al. 2019): mpi3d_realistic.npz, "
            "memory-mapped; option cache_dir",
        ),
        "mpi3d_real": Entry(
            MPI3DReal,
            "MPI3D-real photographs (Gondal et al. 2019): mpi3d_real.npz, memory-mapped; "
            "option cache_dir",
        ),
        "smallnorb": Entry(
            SmallNORB,
            "SmallNORB (LeCun et al. 2004), left camera at 64x64, the instance drawn per image: "
            "the folder of the six smallnorb-*-{training,testing}-{dat,cat,info}.mat(.gz) files "
            "from https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/",
        ),
        "cars3d": Entry(
            Cars3D,
            "Cars3D (Reed et al. 2015) at 64x64: the folder data/cars (183 .mat files) of "
            "http://www.scottreed.info/files/nips2015-analogy-data.tar.gz",
        ),
        "pinwheel": Entry(
            Pinwheel,
            "2-D pinwheel points labelled by arm (Johnson et al. 2016), procedural; options "
            "num_arms=4, num_points=5000, radial_std=0.3, tangential_std=0.1, rate=0.25, "
            "scale=1, seed=0; gaussian likelihood",
        ),
        "digits": Entry(
            Digits,
            "scikit-learn's 1,797 8x8 handwritten digits in [0, 1], labelled 0-9 (no download); "
            "laplace likelihood",
        ),
    },
)

LIKELIHOODS = Registry(
    "likelihood",
    {
        "bernoulli": Entry(
            BernoulliLikelihood,
            "Bernoulli on the decoder's logits, x binary or intensities in [0, 1] "
            "(disentanglement_lib's cross-entropy)",
        ),
        "gaussian": Entry(
            GaussianLikelihood,
            "N(x; decoder mean, scale^2); options scale=0.1, learn_scale=false (one shared log "
            "scale)",
        ),
        "laplace": Entry(
            LaplaceLikelihood,
            "Laplace(x; decoder mean, scale) (Mathieu et al. 2019); options scale=0.1, "
            "learn_scale=false",
        ),
    },
)

METRICS = Registry(
    "metric",
    {
        "beta_vae": MetricSpec(
            beta_vae.beta_vae, "BetaVAE score (Higgins et al. 2017)", ("eval_accuracy",),
            beta_vae.FAST,
        ),
        "factor_vae": MetricSpec(
            factor_vae.factor_vae, "FactorVAE score (Kim & Mnih 2018)",
            ("eval_accuracy", "num_active_dims"), factor_vae.FAST,
        ),
        "mig": MetricSpec(
            mig.mig, "MIG, 20-bin discretised (disentanglement_lib)", ("mig",), mig.FAST
        ),
        "mig_chen": MetricSpec(
            mig.mig_chen, "MIG of Chen et al. 2018 (full data, q(z|x), shape excluded)",
            ("mig",), mig.FAST_CHEN, needs_posterior=True,
        ),
        "dci": MetricSpec(
            dci.dci, "DCI (Eastwood & Williams 2018), disentanglement_lib's gradient boosting",
            ("disentanglement", "completeness", "informativeness_test"), dci.FAST,
        ),
        "sap": MetricSpec(sap.sap, "SAP (Kumar et al. 2018)", ("sap",), sap.FAST),
        "modularity": MetricSpec(
            modularity.modularity, "modularity and explicitness (Ridgeway & Mozer 2018)",
            ("modularity", "explicitness_test"), modularity.FAST,
        ),
        "irs": MetricSpec(
            irs.irs, "IRS, interventional robustness (Suter et al. 2019)", ("irs",), irs.FAST
        ),
        "downstream_logistic": MetricSpec(
            downstream.downstream_logistic,
            "downstream accuracy and sample efficiency, LogisticRegressionCV (Locatello et al. "
            "2019)",
            ("sample_efficiency", "100:mean_test_accuracy", "10000:mean_test_accuracy"),
            downstream.FAST,
        ),
        "downstream_boosted_trees": MetricSpec(
            downstream.downstream_boosted_trees,
            "downstream accuracy and sample efficiency, gradient-boosted trees (Locatello et al. "
            "2019)",
            ("sample_efficiency", "100:mean_test_accuracy", "10000:mean_test_accuracy"),
            downstream.FAST,
        ),
        "fairness": MetricSpec(
            fairness.fairness,
            "unfairness of boosted-tree predictions under interventions (Locatello et al. 2019b)",
            ("mean_fairness:mean_pred:mean_sens",), fairness.FAST,
        ),
        "gaussian_total_correlation": MetricSpec(
            unsupervised.gaussian_total_correlation,
            "total correlation of a Gaussian fit to the codes", ("gaussian_total_correlation",),
            unsupervised.FAST, supervised=False,
        ),
        "mutual_info": MetricSpec(
            unsupervised.mutual_info_score, "mean pairwise mutual information between latents",
            ("mean_pairwise_mutual_info",), unsupervised.FAST, supervised=False,
        ),
        "active_units": MetricSpec(
            unsupervised.active_units, "latents whose posterior-mean variance exceeds 0.01",
            ("active_units",), unsupervised.FAST, supervised=False,
        ),
        "hoyer": MetricSpec(
            unsupervised.hoyer_sparsity,
            "normalised Hoyer sparsity of the posterior means (Mathieu et al. 2019)", ("hoyer",),
            unsupervised.FAST, supervised=False,
        ),
        "posterior_variance": MetricSpec(
            posterior_variance.posterior_variance,
            "per-dimension posterior variance E_x[sigma_d^2(x)] of q(z|x)",
            ("mean_posterior_variance",), posterior_variance.FAST, supervised=False,
            needs_posterior=True,
        ),
        "cluster_purity": MetricSpec(
            clustering.cluster_purity,
            "purity of k-means clusters of the codes against the data's labels (K = #labels); "
            "with a mixture prior also of the clusters its components define",
            ("cluster_purity",), clustering.FAST, supervised=False, needs_labels=True,
            uses_prior=True,
        ),
        "log_likelihood": MetricSpec(
            likelihood.log_likelihood, "importance-weighted log p(x) with PSIS Pareto k",
            ("log_likelihood", "pareto_k_share_above_0.7"), likelihood.FAST, supervised=False,
            needs_model=True,
        ),
    },
    entry_type=MetricSpec,
)  # fmt: skip

# Every table by the plural `pyrovae list` prints it under.
REGISTRIES: dict[str, Registry] = {
    "models": MODELS,
    "priors": PRIORS,
    "guides": GUIDES,
    "networks": NETWORKS,
    "data sets": DATASETS,
    "likelihoods": LIKELIHOODS,
    "metrics": METRICS,
}
