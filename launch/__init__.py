"""Running sweeps on SLURM: preflight checks of a request (``preflight``), what the cluster offers and runs
(``slurm``), GPU-hour estimates (``cost``), the state of a sweep's cells (``sweep``, ``gol-sweep status``), and
what a launch will submit (``plan`` for each cell, ``sweep_plan`` for the whole sweep: used by the launchers of
``hydra_plugins/gol_launcher`` and by ``gol-sweep plan``), checks every launch runs first (``callbacks``).
The Hydra launcher presets live in ``conf/hydra/launcher/``; the local test cluster in ``launch/cluster/``.
"""
