"""Where trainings run: Ray Tune trials through one runner (runner), the race's trunks (trunks), the Fig. 8
ablation stage (ablation), the run directory and its resume (rundir), stops (interrupt, multirun)."""
