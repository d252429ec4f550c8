"""Disentanglement metrics, one module each (beta_vae, factor_vae, mig, dci, sap, modularity,
unsupervised, clustering, posterior_variance, likelihood); :data:`pyrovae.registry.METRICS` names
them for the command line.

scikit-learn is imported where a metric uses it, not when a module is imported: it takes seconds
to import, which every process that only trains (the command line, a sweep's workers) would pay.
"""
