"""Trainer tasks: one file per job, each following the task protocol of rnnlab.train."""
