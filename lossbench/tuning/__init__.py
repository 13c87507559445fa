"""Per-loss hyperparameter tuning on the val split: every loss gets the same budget (*A Metric Learning Reality
Check*, Musgrave et al. 2020).

``python -m stages.tune <loss>`` runs ``tune.trials`` trials of one loss (:mod:`lossbench.tuning.study`), each
training ``tune.seeds`` seeds with values drawn from the loss's search space (``space`` of its options class in
:mod:`lossbench.config.loss_options`, plus ``train.lr``), and writes every trial to ``metrics/tuning/<loss>.csv``
and the best values to ``data/tuning/<loss>/best.json`` (:mod:`lossbench.tuning.records`). The test split is
never read. The training runs then use the tuned values (:mod:`lossbench.tuning.apply`).
"""
