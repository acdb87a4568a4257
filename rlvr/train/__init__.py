"""Training: the Trainer built in named stages, the one loop every algorithm runs, checkpoints, the monitor
and its alarms, and the run's summary."""
