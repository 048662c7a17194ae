"""``scalesearch-report run_dir=...``: re-render a finished run's report from its tables (never trains)."""

from __future__ import annotations

from pathlib import Path

from ..config import ReportAppConfig
from ..plan.preflight import check_report
from ..report.writer import load_run, write_report
from ..run.rundir import REPORT, claim

__all__ = ["run_report_app"]


def run_report_app(cfg: ReportAppConfig, out_dir: Path) -> Path:
    """The ``scalesearch-report`` job: re-render the report of ``cfg.run_dir`` (a search run, held for this process:
    refused while another run uses it) from its tables."""
    check_report(cfg.report)
    if not cfg.run_dir:
        raise ValueError("run_dir is not set; allowed: scalesearch-report run_dir=<a search run directory>")
    if not Path(cfg.run_dir).is_dir():
        load_run(cfg.run_dir)  # its one-line refusal: not a directory
    with claim(cfg.run_dir, REPORT, guest=True, elsewhere="run_dir=<a scalesearch run directory>"):
        return write_report(Path(cfg.run_dir), cfg.report)
