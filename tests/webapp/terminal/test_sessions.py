"""Server-side login sessions: logout ends a session for every copy of its cookie; idle and absolute timeouts."""

from __future__ import annotations

import hashlib
import sqlite3
import time
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


def session_id(session: requests.Session, stack: Stack) -> str:
    """The login session id carried by ``session``'s signed cookie."""
    app = stack.terminal_app
    return str(app.session_interface.get_signing_serializer(app).loads(session.cookies["facepp_terminal"])["_user_id"])


def session_hash(session: requests.Session, stack: Stack) -> str:
    """The SHA-256 under which the terminal stores that login session."""
    return hashlib.sha256(session_id(session, stack).encode()).hexdigest()


def backdate(stack: Stack, session: requests.Session, *, idle: float, age: float) -> None:
    """Make ``session`` look ``idle`` seconds unused and ``age`` seconds old (instead of sleeping that long)."""
    now = time.time()
    with sqlite3.connect(stack.instance_dir / "terminal.db") as db:
        db.execute("UPDATE operator_sessions SET last_seen = ?, started = ? WHERE id_hash = ?",
                   (now - idle, now - age, session_hash(session, stack)))


def test_idle_timeout_and_lifetime(stack: Stack) -> None:
    config = stack.terminal_app.extensions["terminal_config"]
    idle, lifetime = config.session_idle_timeout, config.session_lifetime
    assert (idle, lifetime) == (900, 8 * 3600)
    used, forgotten, old = requests.Session(), requests.Session(), requests.Session()
    for session in (used, forgotten, old):
        login(session, stack.terminal_url)
    backdate(stack, used, idle=idle - 30, age=lifetime - 30)
    backdate(stack, forgotten, idle=idle + 1, age=idle + 1)
    backdate(stack, old, idle=1, age=lifetime + 1)
    assert logged_in(used, stack)
    assert not logged_in(forgotten, stack), "unused for longer than the idle timeout"
    assert not logged_in(old, stack), "older than the session lifetime, however active"
    # The request renewed the used session: unused for another idle - 30 s it is still alive.
    with sqlite3.connect(stack.instance_dir / "terminal.db") as db:
        (last_seen,) = db.execute("SELECT last_seen FROM operator_sessions WHERE id_hash = ?",
                                  (session_hash(used, stack),)).fetchone()
    assert time.time() - last_seen < 30
    # Expired sessions are deleted, not only refused.
    with sqlite3.connect(stack.instance_dir / "terminal.db") as db:
        stored = {row[0] for row in db.execute("SELECT id_hash FROM operator_sessions")}
    assert session_hash(forgotten, stack) not in stored and session_hash(old, stack) not in stored


def test_sessions_table_holds_no_usable_session_id(stack: Stack) -> None:
    operator = requests.Session()
    login(operator, stack.terminal_url)
    with sqlite3.connect(stack.instance_dir / "terminal.db") as db:
        stored = [row[0] for row in db.execute("SELECT id_hash FROM operator_sessions")]
    assert session_hash(operator, stack) in stored
    assert session_id(operator, stack) not in "".join(stored)
