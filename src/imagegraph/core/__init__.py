"""The pure core: the image family's model (images.yaml and the values in it), its graph, fingerprints,
what changed, the plan and the build requests, the tag, release and retention policies, and what
Dockerfiles, ignore files and BuildKit's output say. Nothing here talks to git, the engine, a registry
or a process: facts come in as values or through small protocols (``Sources``, ``History``), decisions
go out as values; the only files read here are the checkout's own declarations (images.yaml, the
Dockerfiles and ignore files it names, the CI event file). Import rule: core imports only core, the
standard library (none of its process, network or locking modules) and the pure libraries yaml,
pathspec and packaging; never adapters/, presentation/, execute, workspace or tasks/
(tests/unit/test_layout.py checks it).
"""
