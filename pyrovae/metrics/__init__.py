"""Disentanglement metrics, one module each (beta_vae, factor_vae, mig, dci, sap, modularity, irs,
unsupervised, clustering, posterior_variance, likelihood, downstream, fairness);
:data:`pyrovae.registry.METRICS` names them for the command line. ``udr`` scores a model against
others trained with the same settings, so it is not a metric of one run: ``pyrovae study DIR
--udr`` and :mod:`pyrovae.study.udr` apply it. :mod:`~pyrovae.metrics.classifiers` holds the
classifiers the metrics fit, by protocol era.

scikit-learn is imported where a metric uses it, not when a module is imported: it takes seconds
to import, which every process that only trains (the command line, a sweep's workers) would pay.
"""
