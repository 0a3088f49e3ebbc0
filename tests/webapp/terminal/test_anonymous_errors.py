"""An anonymous caller gets a bare error page, never data, on every route and for every error status."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests

from facepp.data.images import read_image
from tests.helpers.terminal import Stack, csrf_token, jpeg, orl_file

SECRET_NAME = "Zelda Quuxington"
FORM_POSTS = ["/login", "/logout", "/enrol", "/verify", "/identify", "/subjects/delete"]
AUTH_ROUTES = {"/login", "/logout"}  # their errors re-show the login form (which holds no data either)
LIMIT = 2  # login and match rate limit of this module's stack, per minute


@pytest.fixture(scope="module")
def anon_stack(make_stack: Callable[..., Stack], orl: Path) -> Stack:
    """A stack with one enrolled subject and tight rate limits (so that 429 is reachable)."""
    stack = make_stack(login_rate_limit=f"{LIMIT} per minute", match_rate_limit=f"{LIMIT} per minute")
    face = jpeg(read_image(orl_file(orl, 35, 1)))
    r = stack.api("POST", "/enroll", data={"subject_id": SECRET_NAME}, files=[("image", ("a.jpg", face, "image/jpeg"))])
    assert r.status_code == 201, r.text
    return stack


def assert_bare(r: requests.Response, status: int, path: str) -> None:
    """The answer has ``status`` and no data: no subject name, no enrolment date, no count, no table."""
    assert r.status_code == status, (path, r.status_code, r.text[:300])
    text = r.text
    assert SECRET_NAME not in text and SECRET_NAME.split()[0] not in text
    assert datetime.now(timezone.utc).date().isoformat() not in text
    assert "<table" not in text and "enrolled" not in text.lower() and "threshold" not in text.lower()
    if path in AUTH_ROUTES and status in (400, 413, 429):
        assert 'id="login-form"' in text
    else:
        assert f'id="error-page" data-status="{status}"' in text, text[:300]


@pytest.mark.parametrize("path", FORM_POSTS)
def test_post_without_csrf_token_is_400(anon_stack: Stack, path: str) -> None:
    r = requests.post(anon_stack.terminal_url + path, data={"subject_id": SECRET_NAME}, timeout=30)
    assert_bare(r, 400, path)


@pytest.mark.parametrize("path", FORM_POSTS)
def test_oversized_body_is_413(anon_stack: Stack, path: str) -> None:
    limit = anon_stack.terminal_app.config["MAX_CONTENT_LENGTH"]
    r = requests.post(anon_stack.terminal_url + path, data={"subject_id": SECRET_NAME},
                      files=[("image", ("big.jpg", b"\xff" * (limit + 1024), "image/jpeg"))], timeout=60)
    assert_bare(r, 413, path)


@pytest.mark.parametrize(("method", "path"), [
    *[(m, p) for p in ("/", "/enrol", "/verify", "/identify", "/subjects", "/login") for m in ("PUT", "DELETE")],
    ("GET", "/logout"), ("GET", "/subjects/delete"), ("PATCH", "/subjects/delete"),
])
def test_wrong_method_is_405(anon_stack: Stack, method: str, path: str) -> None:
    assert_bare(requests.request(method, anon_stack.terminal_url + path, timeout=30), 405, path)


@pytest.mark.parametrize("path", ["/nothing-here", "/static/nothing.css", "/subjects/delete/x", "/subjects/x"])
def test_unknown_url_is_404(anon_stack: Stack, path: str) -> None:
    assert_bare(requests.get(anon_stack.terminal_url + path + "?page=1", timeout=30), 404, path)


@pytest.fixture()
def failing_login(anon_stack: Stack) -> Iterator[None]:
    """The operator table cannot be read (a database fault) while the test runs."""
    database = anon_stack.terminal_app.extensions["terminal"].db

    def broken(*_: object) -> None:
        raise RuntimeError("database is locked")

    database.authenticate = broken
    try:
        yield
    finally:
        del database.authenticate


def test_internal_error_is_500(anon_stack: Stack, failing_login: None) -> None:
    session = requests.Session()
    token = csrf_token(session.get(anon_stack.terminal_url + "/login", timeout=30).text)
    r = session.post(anon_stack.terminal_url + "/login", timeout=30,
                     data={"csrf_token": token, "username": "someone", "password": "some password"})
    assert_bare(r, 500, "/login")
    assert "database is locked" not in r.text


@pytest.mark.parametrize("path", ["/login", "/verify", "/identify"])
def test_rate_limited_is_429(anon_stack: Stack, path: str) -> None:
    """Last in this module: it uses up the login and match limits."""
    session = requests.Session()
    token = csrf_token(session.get(anon_stack.terminal_url + "/login", timeout=30).text)
    answers: list[requests.Response] = []
    while len(answers) <= 2 * LIMIT + 1 and (not answers or answers[-1].status_code != 429):  # a window may roll over
        answers.append(session.post(anon_stack.terminal_url + path, allow_redirects=False, timeout=30,
                                    data={"csrf_token": token, "username": "operator", "password": "wrong password",
                                          "subject_id": SECRET_NAME}))
    assert {a.status_code for a in answers[:-1]} <= {401 if path == "/login" else 302}
    assert_bare(answers[-1], 429, path)
