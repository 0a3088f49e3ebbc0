"""The parameter server's status pages: a participant or operator token, a rate limit, a cached
plot, and metrics taken once per participant while their round is open."""

from __future__ import annotations

import base64
import sqlite3

import pytest
import requests

from facepp.crypto.paillier.secret_cipher import SecretKey
from tests.helpers.federation import ServerProcess, encrypt, token, upload
from training.server import app as server_app

PAGES = ("/", "/status.json", "/metrics.png")


def operator(server: ServerProcess) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.federation.operator_token.read_text()}"}


def report(server: ServerProcess, name: str, round_: int, loss: float) -> requests.Response:
    return requests.post(f"{server.url}/api/v1/rounds/{round_}/metrics", json={"version": 1, "metrics": {"loss": loss}},
                         headers={"Authorization": f"Bearer {token(server, name)}"}, timeout=10)


@pytest.mark.parametrize("auth", [None, "Bearer wrong-token", "Basic " + base64.b64encode(b"x:wrong").decode(),
                                  "Basic %%%", "Bearer "])
def test_pages_refuse_anonymous_and_wrong_tokens(server: ServerProcess, auth: str | None) -> None:
    for page in PAGES:
        response = requests.get(server.url + page, headers={"Authorization": auth} if auth else {}, timeout=10)
        assert response.status_code == 401 and response.json()["code"] == "unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Basic ")  # a browser asks for the token
        assert "alice" not in response.text


def test_pages_open_to_participants_and_the_operator(server: ServerProcess) -> None:
    browser = {"Authorization": "Basic " + base64.b64encode(f"anyone:{server.federation.operator_token.read_text()}".encode()).decode()}
    for headers in (operator(server), browser, {"Authorization": f"Bearer {token(server, 'bob')}"}):
        assert "Round <strong>1</strong>" in requests.get(server.url + "/", headers=headers, timeout=10).text
        assert requests.get(server.url + "/status.json", headers=headers, timeout=10).json()["round"] == 1
        assert requests.get(server.url + "/metrics.png", headers=headers, timeout=30).content.startswith(b"\x89PNG")
    # The operator token reads; it is no participant token.
    response = requests.get(f"{server.url}/api/v1/round", headers=operator(server), timeout=10)
    assert response.status_code == 401


def test_pages_are_rate_limited_per_client(server: ServerProcess) -> None:
    codes = [requests.get(server.url + "/status.json", timeout=10).status_code
             for _ in range(int(server_app.STATUS_RATE_LIMIT.split()[0]) + 5)]
    assert codes.count(429) >= 5 and set(codes) <= {401, 429}
    assert requests.get(server.url + "/status.json", headers=operator(server), timeout=10).status_code == 429
    assert requests.get(f"{server.url}/api/v1/round", headers={"Authorization": f"Bearer {token(server, 'bob')}"},
                        timeout=10).status_code == 200  # the participants' API is not throttled


def test_metrics_once_per_participant_and_only_while_the_round_is_open(server: ServerProcess,
                                                                       paillier_key: SecretKey) -> None:
    assert report(server, "alice", 1, 0.5).status_code == 201
    again = report(server, "alice", 1, 9.0)  # an overwrite
    assert again.status_code == 409 and "already reported" in again.json()["error"]
    assert report(server, "alice", 2, 0.4).status_code == 409  # round 2 has not started
    for name in ("alice", "bob", "carol"):
        assert upload(server, name, 1, encrypt(paillier_key)).status_code == 201  # round 1 closes
    closed = report(server, "bob", 1, 0.1)
    assert closed.status_code == 409 and "closed" in closed.json()["error"]
    with sqlite3.connect(server.federation.server_state / "state.sqlite3") as db:
        assert db.execute("SELECT round, participant, name, value FROM metrics").fetchall() == [(1, "alice", "loss", 0.5)]


def test_the_plot_is_drawn_again_only_after_a_new_report(make_federation, monkeypatch: pytest.MonkeyPatch) -> None:
    fed = make_federation()
    app = server_app.create_app({"FEDERATION": fed.server_config, "STATE_DIR": fed.server_state})
    draws = []
    draw = server_app._draw
    monkeypatch.setattr(server_app, "_draw", lambda rows: draws.append(rows) or draw(rows))
    client = app.test_client()
    headers = {"Authorization": f"Bearer {fed.operator_token.read_text()}"}
    first = [client.get("/metrics.png", headers=headers).data for _ in range(5)]
    assert len(draws) == 1 and len(set(first)) == 1
    assert client.post("/api/v1/rounds/1/metrics", json={"version": 1, "metrics": {"loss": 0.5}},
                       headers={"Authorization": f"Bearer {fed.participant_dir('alice').joinpath('token').read_text()}"}
                       ).status_code == 201
    second = [client.get("/metrics.png", headers=headers).data for _ in range(5)]
    assert len(draws) == 2 and len(set(second)) == 1 and second[0] != first[0]
