"""What to train: the constrained search spaces (space), the candidates and the jobs of every stage (jobs), the
race's rule (race) and the confirmation run at the model's optimum (confirm)."""
