"""Build reports: what one `invoke build` did, per image, kept as JSON and shown as Markdown.

Every build writes ``.imagegraph/reports/<time>-<commit>.json`` (the record:
for machines, history and `invoke report`) and the same run as Markdown (for
people: a CI job summary, a pull request comment). ``invoke report`` reads
them back to put the last run beside the ones before it and beside the
targets images.yaml sets (``report: targets:``).

- :mod:`.record`: the record itself (:class:`~.record.BuildReport`, :class:`~.record.ImageRecord`), as JSON and back;
- :mod:`.make`: a run's record from its plan and results, and what kind of run it was;
- :mod:`.trends`: the last run against the runs before it and against the targets;
- :mod:`.render`: a record as Markdown, as terminal text, and a run's trend as a chart;
- :mod:`.store`: ``.imagegraph/reports/`` on disk.

Everything here is pure except :mod:`.store` (files) and
:func:`~.render.draw_chart` (matplotlib, imported only when a chart is asked for).
"""
