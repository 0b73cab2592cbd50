"""``python -m scorer``: serve the app with uvicorn on $SCORER_HOST:$SCORER_PORT."""

from __future__ import annotations

import os

import uvicorn

from .app import create_app


def main() -> None:
    host = os.environ.get("SCORER_HOST", "0.0.0.0")  # all interfaces: it runs in a container
    raw_port = os.environ.get("SCORER_PORT", "8000")
    try:
        port = int(raw_port)
    except ValueError:
        raise SystemExit(f"SCORER_PORT must be an integer, got {raw_port!r}") from None
    uvicorn.run(create_app(), host=host, port=port, access_log=True, log_level="info")


if __name__ == "__main__":
    main()
