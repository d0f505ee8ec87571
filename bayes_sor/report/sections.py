"""Sections that later stages (the checks, the comparison) add to a run's ``report.md``, each
between its own markers, so that a rerun replaces its section instead of adding a second."""

from __future__ import annotations

import re
from pathlib import Path

from bayes_sor.files import write_atomic
from bayes_sor.report.document import section_markers
from bayes_sor.report.run_report import refresh_report


def append_report_section(run_dir: Path, key: str, markdown: str) -> Path:
    """Append ``markdown`` to ``report.md`` (atomically; a rerun replaces its own section), then
    rewrite ``report.md`` and ``report.html`` together from the folder's files
    (:func:`~bayes_sor.report.run_report.refresh_report`), so the page a co-author opens has
    the section."""
    report = Path(run_dir) / "report.md"
    old = report.read_text() if report.is_file() else "# bayes_sor run report\n"
    begin, end = section_markers(key)
    block = f"{begin}\n{markdown.strip()}\n{end}\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end) + r"\n?", re.DOTALL)
    if pattern.search(old):
        new = pattern.sub(lambda _: block, old)
    else:
        new = old.rstrip("\n") + "\n\n" + block
    write_atomic(report, lambda p: p.write_text(new))
    refresh_report(run_dir)
    return report
