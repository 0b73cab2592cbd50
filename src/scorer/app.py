"""The HTTP API: ``GET /healthz`` and ``POST /predict``, as a Starlette ASGI app."""

from __future__ import annotations

import math

import torch
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .model import N_FEATURES, Scorer

MAX_ROWS = 1024  # bounds the work (and memory) one request can ask for


class BadInput(ValueError):
    """A request body the model cannot score; the message goes back to the client."""


def parse_features(payload: object) -> list[list[float]]:
    """``{"features": [[f1..f4], ...]}`` or ``{"features": [f1..f4]}`` -> rows of floats."""
    if not isinstance(payload, dict) or "features" not in payload:
        raise BadInput('body must be a JSON object with a "features" key')
    rows = payload["features"]
    if not isinstance(rows, list) or not rows:
        raise BadInput('"features" must be a non-empty list')
    if not any(isinstance(row, list) for row in rows):
        rows = [rows]  # a single flat row
    if len(rows) > MAX_ROWS:
        raise BadInput(f"too many rows: {len(rows)} > {MAX_ROWS}")
    return [_parse_row(i, row) for i, row in enumerate(rows)]


def _parse_row(i: int, row: object) -> list[float]:
    if not isinstance(row, list) or len(row) != N_FEATURES:
        got = f"{len(row)} values" if isinstance(row, list) else type(row).__name__
        raise BadInput(f"row {i}: expected a list of {N_FEATURES} numbers, got {got}")
    values = []
    for value in row:
        # bool is an int subclass, and Python's json accepts NaN/Infinity: reject both.
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BadInput(f"row {i}: {_show(value)} is not a number")
        try:
            number = float(value)
        except OverflowError:  # an integer too large for a float
            number = math.inf
        if not math.isfinite(number):
            raise BadInput(f"row {i}: {_show(value)} is not a finite number")
        values.append(number)
    return values


def _show(value: object) -> str:
    """A value for an error message: short enough to keep the message one readable line."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def create_app(scorer: Scorer | None = None) -> Starlette:
    """Build the app; the model is trained here, once, not per request."""
    model = scorer or Scorer()

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "torch": torch.__version__, "model": model.name})

    async def predict(request: Request) -> JSONResponse:
        try:
            rows = parse_features(await request.json())
        except BadInput as exc:
            return JSONResponse({"error": str(exc)}, status_code=422)
        except ValueError:  # json.JSONDecodeError and UnicodeDecodeError
            return JSONResponse({"error": "body is not valid JSON"}, status_code=422)
        # Called inline: scoring even MAX_ROWS rows takes about a millisecond,
        # less than handing the work to a thread pool would cost.
        labels, scores = model.predict(rows)
        return JSONResponse({"labels": labels, "scores": scores})

    return Starlette(routes=[Route("/healthz", healthz, methods=["GET"]), Route("/predict", predict, methods=["POST"])])
