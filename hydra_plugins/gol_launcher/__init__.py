"""Submitit launchers for Hydra that tell W&B when a job is being preempted (see launcher.py)."""
