"""The container engine as builds see it: which buildx builder (builder_choice), the exact commands it runs
(builders), and questions about local images (images).

Making an engine usable (installing, starting dockerd and a registry, emulation, the offline seed, creating a
builder) is not the library's: that is the package ``imagegraph_provision`` beside it (`invoke engine.*`),
which imports this one and is never imported by it. The folder keeps its name because its modules still
talk to the engine and every import of them (``adapters.engine.builders``) stays as it was.
"""
