"""The sample service: its HTTP contract, input validation and model determinism."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator

import pytest

torch = pytest.importorskip("torch", reason="the scorer service needs torch (requirements-torch.txt)")
pytest.importorskip("starlette", reason="the scorer service needs starlette (requirements.txt)")
if importlib.util.find_spec("httpx2") is None and importlib.util.find_spec("httpx") is None:
    pytest.skip("Starlette's TestClient needs httpx2 or httpx (requirements-dev.txt)", allow_module_level=True)

from starlette.testclient import TestClient  # noqa: E402

from scorer import __main__ as scorer_main  # noqa: E402
from scorer.app import MAX_ROWS, create_app  # noqa: E402
from scorer.model import LABELS, MODEL_NAME, Scorer  # noqa: E402

SETOSA = [5.1, 3.5, 1.4, 0.2]
VERSICOLOR = [5.9, 3.0, 4.2, 1.5]
VIRGINICA = [6.7, 3.0, 5.2, 2.3]


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(Scorer())) as test_client:
        yield test_client


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "torch": torch.__version__, "model": MODEL_NAME}


def test_predict_known_inputs(client: TestClient) -> None:
    response = client.post("/predict", json={"features": [SETOSA, VERSICOLOR, VIRGINICA]})
    assert response.status_code == 200
    body = response.json()
    assert body["labels"] == ["setosa", "versicolor", "virginica"]
    assert len(body["scores"]) == 3
    for label, scores in zip(body["labels"], body["scores"], strict=True):
        assert len(scores) == len(LABELS)
        assert sum(scores) == pytest.approx(1.0, abs=1e-5)
        assert LABELS[scores.index(max(scores))] == label
        assert max(scores) > 0.9  # these are typical flowers: the model is confident


def test_predict_is_repeatable(client: TestClient) -> None:
    payload = {"features": [SETOSA, VERSICOLOR, VIRGINICA, [6.3, 2.5, 4.9, 1.5]]}
    first = client.post("/predict", json=payload)
    second = client.post("/predict", json=payload)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()


def test_single_flat_row(client: TestClient) -> None:
    flat = client.post("/predict", json={"features": VIRGINICA})
    nested = client.post("/predict", json={"features": [VIRGINICA]})
    assert flat.status_code == 200
    assert flat.json()["labels"] == ["virginica"]
    assert flat.json() == nested.json()


def test_integers_are_numbers(client: TestClient) -> None:
    response = client.post("/predict", json={"features": [5, 3, 1, 0]})
    assert response.status_code == 200
    assert response.json()["labels"] == ["setosa"]


def test_max_rows_is_accepted(client: TestClient) -> None:
    response = client.post("/predict", json={"features": [SETOSA] * MAX_ROWS})
    assert response.status_code == 200
    assert response.json()["labels"] == ["setosa"] * MAX_ROWS


HUGE = b"9" * 400  # an integer far beyond float range
TOO_MANY = MAX_ROWS + 1
BAD_INPUTS = [
    pytest.param(b"not json", "body is not valid JSON", id="not-json"),
    pytest.param(b'{"features": [1, 2', "body is not valid JSON", id="truncated-json"),
    pytest.param(b"\xff\xfe", "body is not valid JSON", id="not-utf8"),
    pytest.param(b"[5.1, 3.5, 1.4, 0.2]", 'body must be a JSON object with a "features" key', id="not-an-object"),
    pytest.param(b'{"rows": [[5.1, 3.5, 1.4, 0.2]]}', 'body must be a JSON object with a "features" key', id="no-features-key"),
    pytest.param(b'{"features": []}', '"features" must be a non-empty list', id="empty"),
    pytest.param(b'{"features": "5.1,3.5,1.4,0.2"}', '"features" must be a non-empty list', id="string"),
    pytest.param(b'{"features": [5.1, 3.5, 1.4]}', "row 0: expected a list of 4 numbers, got 3 values", id="short-flat-row"),
    pytest.param(b'{"features": [[5.1, 3.5, 1.4, 0.2], [1, 2]]}', "row 1: expected a list of 4 numbers, got 2 values", id="short-row"),
    pytest.param(b'{"features": [[5.1, 3.5, 1.4, 0.2], 7]}', "row 1: expected a list of 4 numbers, got int", id="row-not-a-list"),
    pytest.param(b'{"features": [[5.1, "3.5", 1.4, 0.2]]}', "row 0: '3.5' is not a number", id="string-value"),
    pytest.param(b'{"features": [[5.1, null, 1.4, 0.2]]}', "row 0: None is not a number", id="null-value"),
    pytest.param(b'{"features": [[5.1, true, 1.4, 0.2]]}', "row 0: True is not a number", id="bool-value"),
    pytest.param(b'{"features": [[5.1, [3.5], 1.4, 0.2]]}', "row 0: [3.5] is not a number", id="nested-value"),
    pytest.param(b'{"features": [[5.1, NaN, 1.4, 0.2]]}', "row 0: nan is not a finite number", id="nan"),
    pytest.param(b'{"features": [[5.1, 1e999, 1.4, 0.2]]}', "row 0: inf is not a finite number", id="infinity"),
    pytest.param(b'{"features": [[5.1, %s, 1.4, 0.2]]}' % HUGE, "row 0: " + "9" * 37 + "... is not a finite number", id="huge-integer"),
    pytest.param(json.dumps({"features": [SETOSA] * TOO_MANY}).encode(), f"too many rows: {TOO_MANY} > {MAX_ROWS}", id="too-many-rows"),
]


@pytest.mark.parametrize(("body", "message"), BAD_INPUTS)
def test_bad_input_is_422_with_one_line_error(client: TestClient, body: bytes, message: str) -> None:
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json() == {"error": message}
    assert "\n" not in response.text


def test_predict_needs_post(client: TestClient) -> None:
    assert client.get("/predict").status_code == 405


def test_model_is_deterministic_across_constructions() -> None:
    rng_before = torch.get_rng_state()
    first, second = Scorer(), Scorer()
    # Training seeds its own forked RNG: the caller's global torch RNG is untouched.
    assert torch.equal(torch.get_rng_state(), rng_before)
    first_state, second_state = first.model.state_dict(), second.model.state_dict()
    assert first_state.keys() == second_state.keys()
    for name, tensor in first_state.items():
        assert torch.equal(tensor, second_state[name]), name
    rows = [SETOSA, VERSICOLOR, VIRGINICA, [6.0, 2.2, 5.0, 1.5]]
    assert first.predict(rows) == second.predict(rows)


def test_seed_changes_the_weights() -> None:
    default, other = Scorer(), Scorer(seed=1)
    assert not torch.equal(default.model.net[0].weight, other.model.net[0].weight)
    # A different seed still learns the same well-separated classes.
    assert other.predict([SETOSA, VERSICOLOR, VIRGINICA])[0] == ["setosa", "versicolor", "virginica"]


def test_main_reads_host_and_port_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, object]] = []
    monkeypatch.setattr(scorer_main.uvicorn, "run", lambda app, **kwargs: calls.append(kwargs))
    monkeypatch.setenv("SCORER_HOST", "127.0.0.1")
    monkeypatch.setenv("SCORER_PORT", "9123")
    scorer_main.main()
    assert calls[0]["host"] == "127.0.0.1"
    assert calls[0]["port"] == 9123
    assert calls[0]["access_log"] is True

    monkeypatch.delenv("SCORER_HOST")
    monkeypatch.delenv("SCORER_PORT")
    scorer_main.main()
    assert (calls[1]["host"], calls[1]["port"]) == ("0.0.0.0", 8000)


def test_main_rejects_a_bad_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scorer_main.uvicorn, "run", lambda app, **kwargs: pytest.fail("must not start"))
    monkeypatch.setenv("SCORER_PORT", "eighty")
    with pytest.raises(SystemExit, match="SCORER_PORT must be an integer, got 'eighty'"):
        scorer_main.main()
