"""Presentation: what people and CI read. Live progress, the tables the tasks print, CI job matrices and
the build reports (reports/), all made from the core's values (plans, results, explanations,
verdicts). Import rule: presentation imports core and presentation; of the adapters only the plain
values named in tests/unit/test_layout.py (a runner's Command), never git, docker or requests, and
never execute, workspace or tasks/.
"""
