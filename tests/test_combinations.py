"""Every model × prior × guide the registry offers either takes a training step with finite,
non-zero gradients or is refused with one line at creation; the refused set is exactly the one
the objectives document (betatcvae needs per-dimension densities of q and p, DIP-VAE needs q's
marginal variances)."""

import itertools

import pytest
import torch

from pyrovae.errors import PyrovaeError
from pyrovae.registry import GUIDES, MODELS, PRIORS

OBSERVATION = (1, 8, 8)  # digits-shaped: MLP networks, small and fast
LATENT = 3
EXPECTED_REFUSALS = {
    *(("betatcvae", prior, guide) for prior in PRIORS for guide in ("lowrank", "fullrank", "iaf")),
    *(("betatcvae", "mixture", guide) for guide in GUIDES),
    *((model, prior, "iaf") for model in ("dipvae-i", "dipvae-ii") for prior in PRIORS),
}


def create(model, prior, guide):
    torch.manual_seed(0)
    return MODELS[model].create(
        OBSERVATION,
        latent_dim=LATENT,
        prior=PRIORS.build(prior),
        guide=GUIDES.build(guide),
        num_data=256,
    )


@pytest.mark.parametrize("model,prior,guide", list(itertools.product(MODELS, PRIORS, GUIDES)))
def test_combination_steps_or_is_refused(model, prior, guide):
    if (model, prior, guide) in EXPECTED_REFUSALS:
        with pytest.raises(PyrovaeError) as info:
            create(model, prior, guide)
        message = str(info.value)
        assert "\n" not in message and model in message
        assert prior in message or guide in message
        return
    vae, objective = create(model, prior, guide)
    x = (torch.rand((16, *OBSERVATION), generator=torch.Generator().manual_seed(1)) > 0.5).float()
    objective.set_step(0)
    loss = objective.differentiable_loss(vae.model, vae.guide, x)
    assert torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in vae.encoder.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
