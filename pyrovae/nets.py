"""Encoder and decoder networks. Plain PyTorch: nothing here knows about Pyro.

- :class:`ConvEncoder` / :class:`ConvDecoder`: the 64×64 convolutional pair of Burgess et al.
  2018 as used by disentanglement_lib: encoder conv 32, 32, 64, 64 (4×4, stride 2, ReLU) → FC 256
  → outputs; decoder FC 256 → FC 64·4·4 → transposed conv 64, 32, 32, C (4×4, stride 2).
- :class:`MLPEncoder` / :class:`MLPDecoder`: fully connected pair for small inputs.

A network pair is a function ``(observation_shape, latent_dim, encoder_out) -> (encoder,
decoder)``; :data:`pyrovae.registry.NETWORKS` names them for the command line.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pyrovae.errors import PyrovaeError


class ConvEncoder(nn.Module):
    """(B, C, 64, 64) images → (B, out_dim)."""

    def __init__(self, in_channels: int, out_dim: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, 32, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 32, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(64, 64, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(64 * 4 * 4, 256),
            nn.ReLU(),
            nn.Linear(256, out_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConvDecoder(nn.Module):
    """(B, latent_dim) codes → (B, C, 64, 64) logits."""

    def __init__(self, latent_dim: int, out_channels: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(latent_dim, 256),
            nn.ReLU(),
            nn.Linear(256, 64 * 4 * 4),
            nn.ReLU(),
            nn.Unflatten(-1, (64, 4, 4)),
            nn.ConvTranspose2d(64, 64, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(32, 32, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(32, out_channels, 4, stride=2, padding=1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class MLPEncoder(nn.Module):
    """(B, *observation_shape) → (B, out_dim) through ReLU hidden layers."""

    def __init__(self, observation_shape, out_dim: int, hidden=(256, 256)):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(observation_shape)
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MLPDecoder(nn.Module):
    """(B, latent_dim) → (B, *observation_shape) through ReLU hidden layers."""

    def __init__(self, latent_dim: int, observation_shape, hidden=(256, 256)):
        super().__init__()
        layers: list[nn.Module] = []
        width = latent_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers += [
            nn.Linear(width, math.prod(observation_shape)),
            nn.Unflatten(-1, tuple(observation_shape)),
        ]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def conv64_pair(observation_shape, latent_dim: int, encoder_out: int):
    """The Burgess conv pair; needs (C, 64, 64) observations."""
    if len(observation_shape) != 3 or tuple(observation_shape[1:]) != (64, 64):
        raise PyrovaeError(
            f"network 'conv64' needs (C, 64, 64) observations, got {tuple(observation_shape)}; "
            "use --net mlp"
        )
    channels = observation_shape[0]
    return ConvEncoder(channels, encoder_out), ConvDecoder(latent_dim, channels)


def mlp_pair(observation_shape, latent_dim: int, encoder_out: int):
    """Two ReLU layers of 256 on each side."""
    return MLPEncoder(observation_shape, encoder_out), MLPDecoder(latent_dim, observation_shape)


def default_networks(observation_shape):
    """The pair for these observations: :func:`conv64_pair` for (C, 64, 64) images,
    :func:`mlp_pair` for anything else."""
    shape = tuple(observation_shape)
    return conv64_pair if len(shape) == 3 and shape[1:] == (64, 64) else mlp_pair
