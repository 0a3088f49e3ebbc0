"""The same enrol / score / restart scenario on PostgreSQL (psycopg 3), in a throw-away cluster.

Needs the PostgreSQL server binaries (Debian: ``apt-get install postgresql``,
found under ``/usr/lib/postgresql/*/bin`` or on ``PATH``); skipped with the reason
otherwise. The cluster lives in a temporary folder, listens on a free loopback
port with trust authentication, and is removed afterwards. PostgreSQL refuses
to run as root, so under root it runs as the ``postgres`` (or ``nobody``) user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from facepp.crypto.ckks.secret_key import CkksKeyHolder
from tests.helpers.matcher import MatcherServer, snapshot
from tests.helpers.matcher_flows import enrol_score_restart
from tests.helpers.net import free_port
from webapp.matcher.client import MatcherError


def _bindir() -> Path | None:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name)
                        if p.parent.name.isdigit() else 0, reverse=True)
    found = shutil.which("initdb")
    if found:
        candidates.insert(0, Path(found).parent)
    return next((d for d in candidates if (d / "initdb").exists() and (d / "pg_ctl").exists()), None)


def _run_as() -> tuple[list[str], str | None]:
    """Command prefix and user that may run the server (not root)."""
    if os.geteuid() != 0:
        return [], None
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.skip("running as root and runuser is missing: PostgreSQL refuses to run as root")
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        return [runuser, "-u", user, "--"], user
    pytest.skip("running as root and neither a postgres nor a nobody user exists")


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    bindir = _bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql")
    prefix, user = _run_as()
    root = Path(tempfile.mkdtemp(prefix="facepp-pg-"))
    data = root / "data"
    if user is not None:
        os.chmod(root, 0o700)
        shutil.chown(root, user=user)
    port = free_port()
    env = {**os.environ, "LC_ALL": "C"}
    try:
        subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "facepp", "--auth=trust",
                        "-E", "UTF8", "--no-sync"], check=True, capture_output=True, timeout=120, env=env, cwd=root)
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off -c full_page_writes=off"
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"),
                        "-o", options, "-w", "-t", "60", "start"], check=True, capture_output=True, timeout=90,
                       env=env, cwd=root)
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"could not start a PostgreSQL cluster: {exc.stderr.decode(errors='replace')[-2000:]}")
    try:
        yield f"postgresql+psycopg://facepp@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       capture_output=True, timeout=60, env=env, cwd=root, check=False)
        time.sleep(0.2)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture()
def pg_matcher(postgres_url: str) -> Iterator[MatcherServer]:
    server = MatcherServer(postgres_url).start()
    yield server
    server.stop()


def test_enrol_score_restart_on_postgres(pg_matcher: MatcherServer, key_holder: CkksKeyHolder,
                                         embeddings: np.ndarray) -> None:
    assert pg_matcher.state.store.engine.dialect.name == "postgresql"
    enrol_score_restart(pg_matcher, key_holder, embeddings)
    before = snapshot(pg_matcher)
    with pytest.raises(MatcherError, match="protocol_error"):
        pg_matcher.client().enrol("x", key_holder.encrypt_template(embeddings[0])[:-5])
    assert snapshot(pg_matcher) == before
