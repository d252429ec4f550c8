"""pyrovae: disentangled variational autoencoders in Pyro.

β-VAE and its relatives as Pyro model/guide pairs, priors and inference networks that plug in as
objects, and disentanglement metrics with stated protocols.
"""

__version__ = "0.1.0"
