"""Words and pictures from a run's facts: report.md and the plots (writer), shared plot and table helpers
(render). Never imports run/."""
