"""One self-contained HTML report of a run: `write_report(run_dir)` writes `report.html`.

    alignlab report [RUN]

The page references nothing outside itself (plots are inline PNG data URIs, the CSS is inline,
there is no script), so it can be mailed, archived or opened offline. Sections whose stage has
not run yet say so in one line: a run stopped after `generate` still gives a valid report.
"""

from alignlab.report.render import REPORT_NAME, build_sections, render_html, write_report

__all__ = ["REPORT_NAME", "build_sections", "render_html", "write_report"]
