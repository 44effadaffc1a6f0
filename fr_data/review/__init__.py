"""The static review page of a mining run (``hardmine report``), torch-free.

``build_report(run, shards, out)`` writes the folder; modules, one idea each: ``select`` (bounded, ranked
picks per section with DuckDB), ``stats`` (chart aggregates), ``thumbs`` (thumbnails by key through the
shard index), ``figures`` (matplotlib Agg charts), ``attributes`` (values shown with the images), ``page``
(the HTML, with ``page.css`` and ``page.js`` inlined), ``build`` (the whole run). The folder format is
``fr_data.folders.report_folder``; the exported decisions are ``fr_data.folders.review_file``.
"""

from fr_data.review.build import DEFAULT_PER_SECTION, ReportResult, build_report

__all__ = ["DEFAULT_PER_SECTION", "ReportResult", "build_report"]
