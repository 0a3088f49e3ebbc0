"""Server-side login sessions: logout ends a session for every copy of its cookie; idle and absolute timeouts."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Callable

import requests

from tests.helpers.terminal import Stack, csrf_token, login


def logged_in(session: requests.Session, stack: Stack) -> bool:
    """Whether ``session`` reaches an operator page (rather than being sent to the login)."""
    r = session.get(stack.terminal_url + "/subjects", allow_redirects=False, timeout=30)
    assert r.status_code in (200, 302), r.status_code
    return r.status_code == 200


def copy_of(session: requests.Session) -> requests.Session:
    """Another client holding the same cookies (a stolen or replayed cookie)."""
    replay = requests.Session()
    replay.cookies.update(session.cookies)
    return replay


def test_cookie_replayed_after_logout_is_refused(stack: Stack, orl) -> None:  # type: ignore[no-untyped-def]
    operator, other_tab = requests.Session(), requests.Session()
    login(operator, stack.terminal_url)
    login(other_tab, stack.terminal_url)
    stolen = copy_of(operator)
    page = operator.get(stack.terminal_url + "/subjects", timeout=30)
    token = csrf_token(page.text)
    assert logged_in(stolen, stack)

    r = operator.post(stack.terminal_url + "/logout", data={"csrf_token": token}, timeout=30)
    assert r.status_code == 200 and "Logged out" in r.text
    assert not logged_in(operator, stack)
    assert not logged_in(stolen, stack), "a copy of the cookie outlived the logout"
    # The replayed cookie still carries a valid CSRF token, yet acts as nobody.
    stack.api("POST", "/enroll", data={"subject_id": "kept"},
              files=[("image", ("a.pgm", (orl / "s34" / "1.pgm").read_bytes(), "image/x-portable-graymap"))])
    r = stolen.post(stack.terminal_url + "/subjects/delete", data={"csrf_token": token, "subject_id": "kept"},
                    allow_redirects=False, timeout=30)
    assert r.status_code == 302 and "/login" in r.headers["Location"]
    assert "kept" in [s["subject_id"] for s in stack.api("GET", "/subjects").json()["subjects"]]
    # Logging out one session leaves the operator's other sessions alone.
    assert logged_in(other_tab, stack)


def test_idle_timeout_and_lifetime(make_stack: Callable[..., Stack]) -> None:
    short = make_stack(session_idle_timeout=2, session_lifetime=4)
    active, idle = requests.Session(), requests.Session()
    login(active, short.terminal_url)
    login(idle, short.terminal_url)
    started = time.monotonic()
    while time.monotonic() - started < 3.0:  # used every 0.5 s: the idle timeout never strikes
        assert logged_in(active, short)
        time.sleep(0.5)
    assert not logged_in(idle, short), "3 s without a request, idle timeout 2 s"
    time.sleep(max(0.0, 4.5 - (time.monotonic() - started)))
    assert not logged_in(active, short), "past the 4 s lifetime however active"


def test_sessions_table_holds_no_usable_session_id(stack: Stack) -> None:
    operator = requests.Session()
    login(operator, stack.terminal_url)
    app = stack.terminal_app
    session_id = app.session_interface.get_signing_serializer(app).loads(operator.cookies["facepp_terminal"])["_user_id"]
    with sqlite3.connect(stack.instance_dir / "terminal.db") as db:
        stored = [row[0] for row in db.execute("SELECT id_hash FROM operator_sessions")]
    assert hashlib.sha256(session_id.encode()).hexdigest() in stored
    assert session_id not in "".join(stored)
