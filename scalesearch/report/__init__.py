"""Words and pictures from a run's facts: best.json and summary.md (artifacts, summary), report.md (writer, family,
plots), shared plot and table helpers (render). Never imports run/."""
