"""Where trainings run: Ray Tune trials through one runner (runner, session, trial, tables, searcher, trunks), the
stages' drivers (stages, racing, ablation), the run directory, what defines a run and how it resumes (rundir,
resume), and stops (interrupt, multirun)."""
