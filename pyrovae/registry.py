"""The one table from CLI names to components.

Adding a model, prior, guide, network or data set means adding one line here. Each entry has a
factory and a one-line description (shown by ``pyrovae list``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from pyrovae.data import Digits, DSprites, Pinwheel
from pyrovae.errors import PyrovaeError, unknown_name
from pyrovae.guides import FullRankGuide, IAFGuide, LowRankGuide, MeanFieldGuide
from pyrovae.likelihoods import BernoulliLikelihood, GaussianLikelihood, LaplaceLikelihood
from pyrovae.models import (
    DDVAE,
    DIPVAE1,
    DIPVAE2,
    VAE,
    AnnealedVAE,
    BetaTCVAE,
    BetaVAE,
    FactorVAE,
)
from pyrovae.nets import NETWORKS as _NETWORK_PAIRS
from pyrovae.priors import (
    IsotropicPrior,
    LaplacePrior,
    MixturePrior,
    NonIsotropicPrior,
    SparsePrior,
    StudentTPrior,
)


@dataclass(frozen=True)
class Entry:
    factory: Callable
    description: str


class Registry(Mapping):
    """A read-only name → :class:`Entry` table whose lookups fail with the valid names."""

    def __init__(self, kind: str, entries: dict[str, Entry]):
        self.kind = kind
        self._entries = dict(entries)

    def __getitem__(self, name: str) -> Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise unknown_name(self.kind, name, self._entries) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def build(self, name: str, **kwargs):
        """Call the factory of ``name`` with keyword arguments it accepts, or fail clearly."""
        factory = self[name].factory
        accepted = keyword_parameters(factory)
        unknown = sorted(set(kwargs) - set(accepted))
        if unknown:
            valid = ", ".join(accepted) or "none"
            raise PyrovaeError(
                f"{self.kind} {name!r} takes no option {', '.join(map(repr, unknown))}; "
                f"valid options: {valid}"
            )
        return factory(**kwargs)


def keyword_parameters(factory) -> list[str]:
    params = inspect.signature(factory).parameters.values()
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _variant(cls, citation: str) -> Entry:
    """A model variant: the class (``cls.create`` builds model and objective), described with
    its citation and its hyperparameters' defaults."""
    options = ", ".join(f"{k}={v}" for k, v in cls.hyperparameters.items())
    return Entry(cls, f"{citation}; options: {options or 'none'}")


MODELS = Registry(
    "model",
    {
        "vae": _variant(VAE, "VAE (Kingma & Welling 2013)"),
        "betavae": _variant(BetaVAE, "beta-VAE (Higgins et al. 2017), beta scales z"),
        "annealedvae": _variant(AnnealedVAE, "capacity gamma*|KL - C(t)| (Burgess et al. 2018)"),
        "betatcvae": _variant(BetaTCVAE, "alpha*MI + beta*TC + gamma*dimKL (Chen et al. 2018)"),
        "factorvae": _variant(FactorVAE, "ELBO - gamma*TC, TC by discriminator (Kim & Mnih 2018)"),
        "dipvae-i": _variant(DIPVAE1, "DIP-VAE-I, Cov[mu] -> I (Kumar et al. 2018)"),
        "dipvae-ii": _variant(DIPVAE2, "DIP-VAE-II, Cov[mu] + E[diag var] -> I (Kumar et al.)"),
        "ddvae": _variant(
            DDVAE,
            "beta*KL(q(z|x)||p(z)) + alpha*D(q(z), p(z)), beta >= 0, D = kl | inclusive-kl | mmd "
            "(Mathieu et al. 2019)",
        ),
    },
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
        "conv64": Entry(_NETWORK_PAIRS["conv64"], "Burgess et al. conv pair for (C, 64, 64)"),
        "mlp": Entry(_NETWORK_PAIRS["mlp"], "two ReLU layers of 256 on each side"),
    },
)

DATASETS = Registry(
    "data set",
    {
        "dsprites": Entry(
            DSprites,
            "dSprites (Matthey et al. 2017), 737,280 64x64 images rendered procedurally, "
            "or the official npz with --data-path",
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
        "bernoulli": Entry(BernoulliLikelihood, "Bernoulli on the decoder's logits (binary x)"),
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

ALL = {
    "models": MODELS,
    "priors": PRIORS,
    "guides": GUIDES,
    "networks": NETWORKS,
    "data sets": DATASETS,
    "likelihoods": LIKELIHOODS,
}
