"""Submitit launchers for gol sweeps: fill-in of unfinished cells, checks before queueing and a dry run
(``launcher.py``), running the cell inside each job with preemption handling (``task.py``), and the config
schemas of the presets (``config.py``)."""
