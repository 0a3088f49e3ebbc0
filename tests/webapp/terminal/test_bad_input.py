"""Every refusal at the terminal's HTTP boundary, each with its status and code."""

from __future__ import annotations

import io
import re
import sqlite3
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import requests
from PIL import Image

from facepp.data.images import read_image
from tests.helpers.terminal import OPERATOR, Stack, csrf_token, jpeg, login, orl_file


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def png_bomb(side: int = 30000) -> bytes:
    """A tiny PNG whose header declares ``side`` x ``side`` pixels (a decompression bomb)."""
    data = bytearray(png(np.zeros((1, 1, 3), np.uint8)))
    ihdr = 8 + 8  # signature, then length + b"IHDR"
    data[ihdr : ihdr + 8] = struct.pack(">II", side, side)
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", zlib.crc32(bytes(data[ihdr - 4 : ihdr + 13])))
    return bytes(data)


def image_part(data: bytes, name: str = "upload.bin") -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("image", (name, data, "application/octet-stream"))]


@pytest.fixture(scope="module")
def face_jpeg(orl: Path) -> bytes:
    return jpeg(read_image(orl_file(orl, 36, 1)))


@pytest.fixture(scope="module")
def alice(stack: Stack, face_jpeg: bytes) -> str:
    r = stack.api("POST", "/enroll", data={"subject_id": "alice"}, files=image_part(face_jpeg, "alice.jpg"))
    assert r.status_code == 201, r.text
    return "alice"


def expect(response: requests.Response, status: int, code: str) -> dict[str, str]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code and body["error"], body
    return body


@pytest.mark.parametrize(
    ("data", "what"),
    [
        (b"this is not an image at all", "text"),
        (b"", "empty"),
        (b"%PDF-1.4\n" + b"0" * 100, "pdf"),
        (b"GIF89a\x01\x00", "broken header"),
        (None, "bomb"),
    ],
)
def test_non_image_refused(stack: Stack, data: bytes | None, what: str) -> None:
    if data is None:
        data = png_bomb()
    r = stack.api("POST", "/enroll", data={"subject_id": f"bad-{what}"}, files=image_part(data))
    if what == "empty":  # an empty part with a file name is still an image that cannot be read
        assert r.status_code == 400
    else:
        expect(r, 400, "bad_image")
    assert all(s["subject_id"] != f"bad-{what}" for s in stack.api("GET", "/subjects").json()["subjects"])


@pytest.mark.parametrize("kind", ["blank", "noise"])
def test_non_face_refused_with_422(stack: Stack, kind: str, alice: str) -> None:
    rng = np.random.default_rng(7)
    pixels = np.full((200, 200, 3), 128, np.uint8) if kind == "blank" else rng.integers(0, 256, (200, 200, 3), dtype=np.uint8)
    body = expect(stack.api("POST", "/enroll", data={"subject_id": f"nf-{kind}"}, files=image_part(png(pixels))), 422, "no_face")
    assert "no face" in body["error"]
    expect(stack.api("POST", "/verify", data={"subject_id": alice}, files=image_part(png(pixels))), 422, "no_face")
    expect(stack.api("POST", "/identify", files=image_part(png(pixels))), 422, "no_face")


def test_truncated_jpeg_refused(stack: Stack, face_jpeg: bytes) -> None:
    body = expect(stack.api("POST", "/enroll", data={"subject_id": "trunc"},
                            files=image_part(face_jpeg[: len(face_jpeg) // 2], "cut.jpg")), 400, "bad_image")
    assert "truncated" in body["error"] or "corrupt" in body["error"]


def test_oversized_upload_refused_with_413(stack: Stack) -> None:
    limit = stack.terminal_app.config["MAX_CONTENT_LENGTH"]
    r = stack.api("POST", "/enroll", data={"subject_id": "big"}, files=image_part(b"\xff" * (limit + 1024)))
    expect(r, 413, "payload_too_large")


def test_several_faces_uses_the_largest_and_says_so(stack: Stack, orl: Path) -> None:
    big, small = read_image(orl_file(orl, 37, 1)), cv2.resize(read_image(orl_file(orl, 38, 1)), (69, 84))
    canvas = np.full((160, 260, 3), 128, np.uint8)
    canvas[20:132, 10:102], canvas[40:124, 150:219] = big, small
    r = stack.api("POST", "/enroll", data={"subject_id": "two-faces"}, files=image_part(png(canvas), "group.png"))
    assert r.status_code == 201, r.text
    assert any("2 faces found: the largest was used" in note for note in r.json()["notes"])


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-token-wrong-token"}, {"Authorization": "Basic dXNlcjpwYXNz"},
     {"Authorization": "Bearer "}],
    ids=["missing", "invalid", "basic", "empty"],
)
def test_missing_or_invalid_token_refused(stack: Stack, headers: dict[str, str]) -> None:
    for method, path in (("GET", "/subjects"), ("POST", "/verify"), ("POST", "/identify"), ("DELETE", "/subjects/alice")):
        r = requests.request(method, f"{stack.terminal_url}/api{path}", headers=headers, timeout=30)
        expect(r, 401, "unauthorized")


def test_api_disabled_without_token(make_stack) -> None:  # type: ignore[no-untyped-def]
    other = make_stack(api_token=None)
    expect(requests.get(f"{other.terminal_url}/api/subjects", headers=other.auth, timeout=30), 401, "unauthorized")


def test_matcher_rejecting_the_terminal_key_is_502_not_401(make_stack, face_jpeg: bytes) -> None:  # type: ignore[no-untyped-def]
    misconfigured = make_stack(matcher_api_key="not-the-matcher-key")
    r = requests.post(f"{misconfigured.terminal_url}/api/enroll", headers=misconfigured.auth, timeout=60,
                      data={"subject_id": "bob"}, files=image_part(face_jpeg))
    body = expect(r, 502, "matcher_unavailable")
    assert "API key" in body["error"]
    assert misconfigured.terminal_app.extensions["terminal"].db.subjects() == []


def test_duplicate_enrolment_refused_with_409(stack: Stack, alice: str, face_jpeg: bytes) -> None:
    body = expect(stack.api("POST", "/enroll", data={"subject_id": alice}, files=image_part(face_jpeg)), 409, "conflict")
    assert "already enrolled" in body["error"]
    # Surrounding spaces do not make a new subject.
    expect(stack.api("POST", "/enroll", data={"subject_id": f"  {alice} "}, files=image_part(face_jpeg)), 409, "conflict")


@pytest.mark.parametrize(
    "subject_id",
    ["x'; DROP TABLE subjects;--", "1 OR 1=1", "' OR '1'='1", 'a"b', "<script>alert(1)</script>", "a\x00b",
     "../../etc/passwd", "..\\..\\windows", "a/b", "..", ".hidden", "-rf", "x" * 65, "", "   "],
)
def test_bad_subject_ids_refused(stack: Stack, subject_id: str, face_jpeg: bytes, alice: str) -> None:
    before = stack.api("GET", "/subjects").json()["subjects"]
    expect(stack.api("POST", "/enroll", data={"subject_id": subject_id}, files=image_part(face_jpeg)), 400, "bad_subject_id")
    expect(stack.api("POST", "/verify", data={"subject_id": subject_id}, files=image_part(face_jpeg)), 400, "bad_subject_id")
    assert stack.api("GET", "/subjects").json()["subjects"] == before


def test_sql_looking_id_is_stored_verbatim_and_harmless(stack: Stack, face_jpeg: bytes, alice: str) -> None:
    name = "O'Brien-- or 1"
    r = stack.api("POST", "/enroll", data={"subject_id": name}, files=image_part(face_jpeg))
    assert r.status_code == 201, r.text
    names = [s["subject_id"] for s in stack.api("GET", "/subjects").json()["subjects"]]
    assert name in names and alice in names
    r = stack.api("POST", "/verify", data={"subject_id": name}, files=image_part(face_jpeg))
    assert r.status_code == 200 and r.json()["subject_id"] == name
    # The matcher only ever saw the opaque id.
    service = stack.terminal_app.extensions["terminal"]
    assert re.fullmatch(r"[0-9a-f]{32}", service.opaque_id(name))
    assert service.opaque_id(name) in stack.matcher_admin().subjects()
    assert stack.api("DELETE", f"/subjects/{name}").status_code == 200


@pytest.mark.parametrize("path", ["/subjects/..%2F..%2Fetc%2Fpasswd", "/subjects/%2e%2e", "/subjects/a%00b"])
def test_path_looking_delete_refused(stack: Stack, path: str, alice: str) -> None:
    before = stack.api("GET", "/subjects").json()["subjects"]
    r = requests.delete(f"{stack.terminal_url}/api{path}", headers=stack.auth, timeout=30)
    assert r.status_code in (400, 404, 405), r.text
    assert r.json()["code"] in ("bad_subject_id", "not_found", "method_not_allowed")
    assert stack.api("GET", "/subjects").json()["subjects"] == before


def test_other_bad_requests(stack: Stack, face_jpeg: bytes, alice: str) -> None:
    expect(stack.api("POST", "/enroll", data={"subject_id": "noimg"}), 400, "bad_request")
    expect(stack.api("POST", "/verify", data={"subject_id": alice}, files=image_part(face_jpeg) * 2), 400, "bad_request")
    expect(stack.api("POST", "/verify", data={"subject_id": "nobody"}, files=image_part(face_jpeg)), 404, "not_found")
    for k in ("0", "-1", "abc", "1000"):
        expect(stack.api("POST", "/identify", data={"top_k": k}, files=image_part(face_jpeg)), 400, "bad_request")
    too_many = image_part(face_jpeg) * (stack.terminal_app.extensions["terminal"].config.max_images + 1)
    expect(stack.api("POST", "/enroll", data={"subject_id": "many"}, files=too_many), 400, "bad_request")
    expect(stack.api("DELETE", "/subjects/nobody"), 404, "not_found")


# -- forms: CSRF, login, rate limits, headers ---------------------------------------------------


def test_form_post_without_csrf_token_refused(stack: Stack, face_jpeg: bytes) -> None:
    session = requests.Session()
    r = session.post(f"{stack.terminal_url}/login", data={"username": OPERATOR[0], "password": OPERATOR[1]}, timeout=30)
    assert r.status_code == 400 and "CSRF" in r.text
    login(session, stack.terminal_url)
    r = session.post(f"{stack.terminal_url}/enrol", data={"subject_id": "csrf-less"}, files=image_part(face_jpeg), timeout=30)
    assert r.status_code == 400 and "CSRF" in r.text
    r = session.post(f"{stack.terminal_url}/enrol", data={"subject_id": "csrf-bad", "csrf_token": "forged"},
                     files=image_part(face_jpeg), timeout=30)
    assert r.status_code == 400 and "CSRF" in r.text
    names = [s["subject_id"] for s in stack.api("GET", "/subjects").json()["subjects"]]
    assert "csrf-less" not in names and "csrf-bad" not in names


def test_form_errors_are_clear_messages(stack: Stack, face_jpeg: bytes, alice: str) -> None:
    session = requests.Session()
    login(session, stack.terminal_url)
    token = csrf_token(session.get(f"{stack.terminal_url}/enrol", timeout=30).text)
    blank = png(np.full((120, 120, 3), 200, np.uint8))
    r = session.post(f"{stack.terminal_url}/enrol", data={"csrf_token": token, "subject_id": "f1"},
                     files=image_part(blank, "wall.png"), timeout=30)
    assert r.status_code == 422 and "no face detected" in r.text and "wall.png" in r.text
    r = session.post(f"{stack.terminal_url}/enrol", data={"csrf_token": token, "subject_id": "f2"},
                     files=image_part(b"hello", "notes.txt"), timeout=30)
    assert r.status_code == 400 and "not a readable image" in r.text
    r = session.post(f"{stack.terminal_url}/enrol", data={"csrf_token": token, "subject_id": alice},
                     files=image_part(face_jpeg), timeout=30)
    assert r.status_code == 409 and "already enrolled" in r.text
    limit = stack.terminal_app.config["MAX_CONTENT_LENGTH"]
    r = session.post(f"{stack.terminal_url}/enrol", data={"csrf_token": token, "subject_id": "f3"},
                     files=image_part(b"\x00" * (limit + 10), "huge.jpg"), timeout=60)
    assert r.status_code == 413 and "too large" in r.text


def test_pages_need_login_and_send_security_headers(stack: Stack) -> None:
    r = requests.get(f"{stack.terminal_url}/verify", allow_redirects=False, timeout=30)
    assert r.status_code == 302 and "/login" in r.headers["Location"]
    r = requests.get(f"{stack.terminal_url}/login", timeout=30)
    assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"] == "no-referrer"
    assert r.headers["Cache-Control"] == "no-store"
    cookie = r.headers.get("Set-Cookie", "")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    api = requests.get(f"{stack.terminal_url}/api/subjects", headers=stack.auth, timeout=30)
    assert api.headers["X-Content-Type-Options"] == "nosniff"


def test_wrong_password_and_login_rate_limit(make_stack) -> None:  # type: ignore[no-untyped-def]
    other = make_stack(login_rate_limit="3 per minute")
    session = requests.Session()
    statuses = []
    for _ in range(4):
        token = csrf_token(session.get(f"{other.terminal_url}/login", timeout=30).text)
        r = session.post(f"{other.terminal_url}/login", data={"csrf_token": token, "username": OPERATOR[0],
                                                              "password": "wrong password!"}, timeout=30)
        statuses.append(r.status_code)
    assert statuses == [401, 401, 401, 429]
    assert "Too many" in r.text


def test_match_rate_limit_on_api(make_stack, face_jpeg: bytes) -> None:  # type: ignore[no-untyped-def]
    other = make_stack(match_rate_limit="2 per minute")
    codes = [other.api("POST", "/identify", files=image_part(face_jpeg)).status_code for _ in range(3)]
    assert codes[:2] == [200, 200] and codes[2] == 429
    assert other.api("POST", "/identify", files=image_part(face_jpeg)).json()["code"] == "rate_limited"


def test_secure_cookie_by_default(stack: Stack) -> None:
    from webapp.terminal.config import TerminalConfig

    assert TerminalConfig().secure_cookies is True


def test_terminal_db_holds_names_only(stack: Stack, alice: str) -> None:
    files = sorted(p.name for p in stack.instance_dir.iterdir())
    assert set(files) <= {"ckks_secret.key", "subject_hmac.key", "flask_secret.key", "terminal.db",
                          "terminal.db-wal", "terminal.db-shm"}
    with sqlite3.connect(stack.instance_dir / "terminal.db") as db:
        columns = {row[1] for row in db.execute("PRAGMA table_info(subjects)")}
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        settings = dict(db.execute("SELECT key, value FROM settings"))
        stats_columns = {row[1] for row in db.execute("PRAGMA table_info(subject_score_stats)")}
        stats_rows = db.execute("SELECT COUNT(*) FROM subject_score_stats").fetchone()[0]
    assert columns == {"id", "name", "opaque_id", "enrolled_at", "images", "enrolled_by"}
    assert tables == {"subjects", "subject_score_stats", "operators", "operator_sessions", "settings"}
    # Two numbers per subject, and only for a model with a cohort (this one has none).
    assert stats_columns == {"subject_id", "mean", "sigma"} and stats_rows == 0
    # The one setting is the embedder's fingerprint: a hash of the model, nothing about a person.
    assert list(settings) == ["embedder"] and re.fullmatch(r"[0-9a-f]{64}", settings["embedder"])
