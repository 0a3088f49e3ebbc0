"""Browser end to end: headless Debian Chromium (Playwright) with a fake camera showing an ORL face.

Log in, enrol by webcam, verify (genuine by webcam: accepted; impostor by upload:
refused), identify, delete; one screenshot per page under ``out/test-artifacts/terminal``
(or ``$FACEPP_TEST_ARTIFACTS``). Skipped only when /usr/bin/chromium is missing
(CI installs the Debian ``chromium`` package).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from facepp.data.images import read_image
from facepp.model.embedder import Embedder
from tests.helpers.terminal import OPERATOR, Stack, orl_file

CHROMIUM = Path("/usr/bin/chromium")
CAMERA_SUBJECT = 33
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian Chromium at /usr/bin/chromium (apt-get install -y chromium)")


def camera_frame(orl: Path) -> np.ndarray:
    """A 320x240 RGB frame: ORL s33/1 upscaled 2x, edges replicated."""
    face = cv2.resize(read_image(orl_file(orl, CAMERA_SUBJECT, 1)), (184, 224))
    return cv2.copyMakeBorder(face, 8, 8, 68, 68, cv2.BORDER_REPLICATE)


def write_y4m(path: Path, frame: np.ndarray, *, frames: int = 10) -> Path:
    """A YUV4MPEG2 file (text header + raw I420 frames) for Chromium's fake capture device."""
    h, w = frame.shape[:2]
    i420 = cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420).tobytes()
    with path.open("wb") as fh:
        fh.write(f"YUV4MPEG2 W{w} H{h} F10:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            fh.write(b"FRAME\n" + i420)
    return path


@pytest.fixture(scope="module")
def artifacts() -> Path:
    folder = Path(os.environ.get("FACEPP_TEST_ARTIFACTS", "out/test-artifacts")).resolve() / "terminal"
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nbrowser screenshots: {folder}")
    return folder


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory, orl: Path) -> Iterator[object]:
    sync_api = pytest.importorskip("playwright.sync_api")
    folder = tmp_path_factory.mktemp("chromium")
    video = write_y4m(folder / "camera.y4m", camera_frame(orl))
    args = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={video}",
    ]
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            str(folder / "profile"), executable_path=str(CHROMIUM), headless=True, args=args,
            viewport={"width": 1000, "height": 900},
        )
        yield browser
        browser.close()


def camera_ready(page) -> None:  # type: ignore[no-untyped-def]
    """Wait until the camera streams (the page enables Capture then). No wait_for_function: CSP forbids eval."""
    page.wait_for_selector("#camera-capture:not([disabled])", timeout=20000)
    page.wait_for_selector("#camera-status:text-is('Camera on')", timeout=20000)


def impostor_image(embedder: Embedder, orl: Path, threshold: float) -> Path:
    """The ORL image (other subjects) scoring lowest against the camera face, well below the threshold."""
    camera = embedder.embed([camera_frame(orl)])[0]
    candidates = [orl_file(orl, s, 5) for s in range(34, 41)]
    scores = [float(camera @ embedder.embed([read_image(p)])[0]) for p in candidates]
    best = int(np.argmin(scores))
    assert scores[best] < threshold - 0.03, "no impostor image clearly below the threshold for this model"
    return candidates[best]


def test_browser_flow(browser, stack: Stack, orl: Path, embedder: Embedder, threshold: float, artifacts: Path) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    url = stack.terminal_url.replace("127.0.0.1", "localhost")  # a secure context for getUserMedia
    shot = lambda name: page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)  # noqa: E731

    page.goto(f"{url}/enrol")  # redirected to the login page
    assert "/login" in page.url
    shot("01-login")
    page.fill("#username", OPERATOR[0])
    page.fill("#password", OPERATOR[1])
    page.click("#login-submit")
    page.wait_for_selector("#enrol-form")

    # Enrol by webcam: two captures averaged into one template.
    page.fill("#subject-id", "webcam-s33")
    page.click("#camera-start")
    camera_ready(page)
    page.click("#camera-capture")
    page.wait_for_selector("#thumbs img:nth-child(1)")
    page.click("#camera-capture")
    page.wait_for_selector("#thumbs img:nth-child(2)")
    assert page.eval_on_selector("#image-input", "input => input.files.length") == 2
    shot("02-enrol-captured")
    page.click("#submit")
    page.wait_for_selector("#result")
    assert "Enrolled webcam-s33 from 2 image(s)" in page.inner_text("#result")
    shot("03-enrol-done")

    # A second subject by file upload, so identification has a choice.
    page.fill("#subject-id", "upload-s34")
    page.set_input_files("#image-input", [str(orl_file(orl, 34, i)) for i in (1, 2, 3)])
    page.click("#submit")
    page.wait_for_selector("#result")
    assert "Enrolled upload-s34 from 3 image(s)" in page.inner_text("#result")

    # Verify, genuine, by webcam.
    page.click("#nav-verify")
    page.fill("#subject-id", "webcam-s33")
    page.click("#camera-start")
    camera_ready(page)
    page.click("#camera-capture")
    page.wait_for_selector("#thumbs img:nth-child(1)")
    page.click("#submit")
    page.wait_for_selector("#decision")
    assert page.inner_text("#decision") == "MATCH"
    shot("04-verify-genuine")

    # Verify, impostor, by file upload.
    page.fill("#subject-id", "webcam-s33")
    page.set_input_files("#image-input", str(impostor_image(embedder, orl, threshold)))
    page.click("#submit")
    page.wait_for_selector("#decision")
    assert page.inner_text("#decision") == "NO MATCH"
    text = page.inner_text("#result")
    assert f"threshold {threshold:.3f}" in text
    shot("05-verify-impostor")

    # Identify by webcam: the camera face ranks first.
    page.click("#nav-identify")
    page.click("#camera-start")
    camera_ready(page)
    page.click("#camera-capture")
    page.wait_for_selector("#thumbs img:nth-child(1)")
    page.click("#submit")
    page.wait_for_selector("#candidates")
    assert page.inner_text("#candidates tbody tr:first-child .subject") == "webcam-s33"
    shot("06-identify")

    # A non-face upload gives a clear message.
    page.set_input_files("#image-input", {"name": "wall.png", "mimeType": "image/png",
                                          "buffer": cv2.imencode(".png", np.full((100, 100, 3), 200, np.uint8))[1].tobytes()})
    page.click("#submit")
    page.wait_for_selector("#error")
    assert "no face detected" in page.inner_text("#error")
    shot("07-identify-no-face")

    # Subjects list, delete.
    page.click("#nav-subjects")
    page.wait_for_selector("#subjects")
    shot("08-subjects")
    page.click("#subjects tr:has(td.subject:text-is('webcam-s33')) button")
    page.wait_for_selector(".flash")
    assert "Deleted webcam-s33" in page.inner_text(".flash")
    assert "webcam-s33" not in page.inner_text("#subjects")
    shot("09-subjects-after-delete")
    page.close()
