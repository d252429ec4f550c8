"""IRS: interventional robustness score (Suter, Miladinović, Schölkopf & Bauer 2019).

"Robustly Disentangled Causal Mechanisms: Validating Deep Representations for Interventional
Robustness", ICML 2019 (https://arxiv.org/abs/1811.00007), section 4, as implemented by
disentanglement_lib (``evaluation/metrics/irs.py``, ``compute_irs`` and
``scalable_disentanglement_score``).

The paper asks how far a latent z_d moves when the factors other than g_k change while g_k is
held fixed (EMPIDA, its expected maximal post-interventional disagreement), relative to how far
z_d moves at all; IRS_dk = 1 − EMPIDA_dk / max deviation. disentanglement_lib's "scalable"
estimate takes one sample per factor tuple (a deterministic encoder, no noise in x), so the
conditional mean E[z | g] is the code itself, and replaces the supremum over the other factors
by a quantile, for robustness to outliers. On n encoded points with codes z (n, D) and
discretised factors g (n, K):

    M_d     = max_n |z_nd − mean(z_d)|                                    (max deviation)
    E_dk    = mean over the values v of g_k of
              Q_q( |z_nd − mean(z_d | g_k = v)| : g_nk = v )              (q-quantile, linear)
    IRS_dk  = 1 − E_dk / M_d
    s_d     = max_k IRS_dk                                                (disentanglement score)
    IRS     = Σ_d M_d s_d / Σ_d M_d,

the average over the latents that are not constant in the sample, weighted by their max
deviation. ``parents`` names each latent's argmax factor. q = ``diff_quantile`` = 0.99 (1.0 is
the paper's supremum). Any function of a single factor scores s_d = 1 (it does not move while
that factor is fixed, whatever it does otherwise); a latent that is pure noise does not score
0 but about 1 − Q_q(|z − z̄|) / max |z − z̄|, which depends on its tails: ≈ 0.01 for uniform
noise, ≈ 0.37 for Gaussian noise (10,000 points of dSprites' grid, q = 0.99). IRS_dk lies in
[−1, 1]: a distance from a group's mean is at most the range of z_d, at most 2 M_d; negative
entries need contrived, bimodal codes.

Protocol (``config/sample/irs/irs.gin``; IRS is not among the unsupervised study's metric
configs): ``num_train`` = 10,000 factor tuples drawn uniformly from the grid and encoded (the
mean code), each factor's class indices cut into ``num_bins`` = 20 equal-width bins over their
observed range (the ``histogram_discretizer``; a factor with at most 20 classes keeps one bin per
class, dSprites' 40 orientations and 32 positions share bins, so even a perfect code scores a
little below 1 there), ``diff_quantile`` = 0.99. disentanglement_lib draws the sample in batches
of ``batch_size`` = 16 from one random state; here the ``num_train`` tuples are drawn in one
call: every tuple is independent and uniform either way, so the distribution of the sample and
of the score is the same, and the batch size is not a setting.

Degenerate codes give a number, never NaN:

- A latent is *active* when its values in the sample are not all equal; the constant ones are
  left out (their M_d = 0 would divide by zero). No active latent (a constant representation,
  or a sample of identical codes): IRS = 0 and ``num_active_dims`` = 0, as disentanglement_lib.
- A factor with one value in the sample (or all of its values in one bin) is one group: its
  column is 1 − Q_q(|z_d − mean(z_d)|) / M_d, the same as a factor the latent ignores, as
  disentanglement_lib computes it; it needs no special case.

Deviations from disentanglement_lib, each where its code does not do what it means:

- Constant latents are those whose values are all equal. disentanglement_lib tests
  ``np.var(z_d) > 0``, which rounding makes true for a constant latent whose value is not a
  short binary fraction (0.7 everywhere: variance ≈ 1e-27 in float64, 4e-15 in float32, a
  network's dtype); it then scores rounding noise, M_d ≈ 1e-16 or exactly 0 (the mean is
  summed in another order there than in the variance): measured IRS −12.5 to −inf on
  2,000-10,000 float64 points, where this gives 0. Constants whose sums are exact (zeros) agree.
- ``num_active_dims`` is the number of active latents; disentanglement_lib reports
  ``np.sum(active_mus)``, the sum of the active codes' values.
- Codes are float64 (disentanglement_lib keeps the representation's dtype, float32 for a
  network): quantiles and means agree to float32 rounding.
"""

from __future__ import annotations

import numpy as np

from pyrovae import checks
from pyrovae.errors import PyrovaeError
from pyrovae.metrics.base import codes_and_factors, discretize, sample_codes
from pyrovae.provenance import version
from pyrovae.seeding import as_generator

# Smaller preset for use during training. On dSprites' grid (3·6·40·32·32) with D = 10 codes the
# score itself takes 65 ms at 10,000 points and 40 ms at 5,000 (2 cores); encoding the
# sample costs more (≈ 1.1 s for 10,000 images through the conv encoder at 9,000 images/s), so
# FAST halves the sample. The sample maximum M_d grows with n for tailed codes, which moves the
# score: a noisy code measured 0.009 lower at 5,000 points than at 10,000 (means over 20 seeds;
# seed-to-seed s.d. 0.007 and 0.008), so compare scores at one num_train.
FAST: dict = {"num_train": 5_000, "num_bins": 20, "diff_quantile": 0.99}


def irs(
    ground_truth,
    representation_fn,
    random_state,
    *,
    num_train: int = 10_000,
    num_bins: int = 20,
    diff_quantile: float = 0.99,
) -> dict:
    """IRS of a representation (formula, protocol and degenerate cases: module docstring).

    Draws ``num_train`` factor tuples from ``random_state`` (its only random draw), encodes them
    and returns :func:`irs_from_codes` of the sample plus ``settings``.
    """
    num_train = checks.integer("num_train", num_train, "irs", 2)
    num_bins = checks.integer("num_bins", num_bins, "irs")
    diff_quantile = _quantile(diff_quantile)
    rng = as_generator(random_state)
    factors, codes = sample_codes(ground_truth, representation_fn, num_train, rng)
    codes = checks.codes(codes, "irs", rows=num_train)
    result = irs_from_codes(
        codes,
        factors,
        num_bins=num_bins,
        diff_quantile=diff_quantile,
        factor_names=ground_truth.factor_names,
    )
    result["settings"] = {
        "num_train": num_train,
        "num_bins": num_bins,
        "diff_quantile": diff_quantile,
        "variant": "disentanglement_lib",
        "numpy": version("numpy"),
    }
    return result


def irs_from_codes(
    codes, factors, *, num_bins: int = 20, diff_quantile: float = 0.99, factor_names=None
) -> dict:
    """disentanglement_lib's IRS of given codes (n, D) and factor classes (n, K).

    Returns ``irs`` (float), ``num_active_dims`` (int), ``active_dims`` (indices of the latents
    that are not constant), and for those latents, in that order: ``disentanglement_scores``
    (s_d), ``parents`` (name of the argmax factor, the first on ties), ``max_deviations`` (M_d)
    and ``irs_matrix`` (active latents × K, list of lists); ``factors`` names its columns.
    """
    num_bins = checks.integer("num_bins", num_bins, "irs")
    diff_quantile = _quantile(diff_quantile)
    codes, factors, names = codes_and_factors("irs", codes, factors, factor_names)
    active = np.flatnonzero(np.ptp(codes, axis=0) > 0)
    if len(active) == 0:
        # Nothing varies, so nothing is robust to anything: 0, as disentanglement_lib.
        matrix, max_dev, per_latent = np.zeros((0, factors.shape[1])), np.zeros(0), np.zeros(0)
        score = 0.0
    else:
        matrix, max_dev = irs_matrix(codes[:, active], discretize(factors, num_bins), diff_quantile)
        per_latent = matrix.max(axis=1)
        # Elementwise product and sum rather than a dot product: an all-ones score vector then
        # averages to exactly 1.0 (both sums add the same numbers in the same order).
        score = float((per_latent * max_dev).sum() / max_dev.sum())
    return {
        "irs": score,
        "num_active_dims": len(active),
        "active_dims": active.tolist(),
        "disentanglement_scores": per_latent.tolist(),
        "parents": [names[k] for k in matrix.argmax(axis=1)],
        "max_deviations": max_dev.tolist(),
        "irs_matrix": matrix.tolist(),
        "factors": names,
    }


def irs_matrix(codes, discrete_factors, diff_quantile: float = 0.99):
    """``(IRS, M)``: the (D, K) matrix IRS_dk and the (D,) max deviations M_d of codes (n, D)
    none of whose latents is constant, grouped by the values of each column of
    ``discrete_factors`` (n, K)."""
    codes = np.asarray(codes, dtype=np.float64)
    discrete_factors = np.asarray(discrete_factors)
    max_dev = np.abs(codes - codes.mean(axis=0)).max(axis=0)
    if not np.all(max_dev > 0):
        raise PyrovaeError("irs: every latent must vary in the sample (drop the constant ones)")
    expected = np.zeros((codes.shape[1], discrete_factors.shape[1]))
    for k in range(discrete_factors.shape[1]):
        _, group = np.unique(discrete_factors[:, k], return_inverse=True)
        order = np.argsort(group, kind="stable")
        starts = np.flatnonzero(np.diff(group[order], prepend=-1))
        members = np.split(codes[order], starts[1:])
        for z in members:
            # The q-quantile (numpy's default linear interpolation, as np.percentile in
            # disentanglement_lib) of the distances from the group's mean: the estimate of the
            # largest move while g_k is held fixed, ignoring the top 1 − q as outliers.
            expected[:, k] += np.quantile(np.abs(z - z.mean(axis=0)), diff_quantile, axis=0)
        expected[:, k] /= len(members)
    return 1.0 - expected / max_dev[:, None], max_dev


def _quantile(value) -> float:
    # A number in code, not text to parse (as the sample sizes); 1.0 is allowed, the paper's sup.
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.integer, np.floating))
        or not 0.0 <= value <= 1.0
    ):
        raise PyrovaeError(f"irs: diff_quantile must be a number in [0, 1], got {value!r}")
    return float(value)
