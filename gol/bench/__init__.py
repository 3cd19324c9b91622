"""gol/bench."""
