"""What to train: the settings' checks before anything trains (preflight, samplers), the search spaces (space, and
blocks for the baseline search), the candidates and the jobs of every stage (jobs), the race's rule (race) and the
confirmation at the model's optimum (confirm)."""
