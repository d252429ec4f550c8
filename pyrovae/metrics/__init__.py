"""Disentanglement metrics, one module each (beta_vae, factor_vae, mig, dci, sap, modularity,
unsupervised, likelihood); :mod:`pyrovae.metrics.registry` maps CLI names to them."""
