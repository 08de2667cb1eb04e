"""Runs: one module per job turning a config into a run directory (train, predict, evaluate)."""
