"""Terminal configuration: a frozen dataclass, defaults < TOML file < ``FACEPP_TERMINAL_*`` env < CLI.

Terminal only. Secrets (API tokens, the matcher API key, the Flask secret key)
may live here; :meth:`TerminalConfig.describe` masks them for logging.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

from facepp.errors import ConfigError, UsageError
from facepp.serving import ServerTLS, proxy_network
from webapp.settings import LayeredSettings

ENV_PREFIX = "FACEPP_TERMINAL_"
MiB = 1 << 20
#: Settings never logged in clear.
SECRET_FIELDS = frozenset({"api_token", "matcher_api_key", "secret_key"})


@dataclass(frozen=True)
class TerminalConfig(LayeredSettings):
    """Settings of one terminal instance.

    Attributes:
        checkpoint: trained model checkpoint (``facepp train`` / federated training output);
            None: the shipped model (``facepp.models``), SHA-256 checked.
        threshold: decision threshold (a cosine in [-1, 1], or an S-normalised score for a
            model with a cohort); overrides the checkpoint's calibrated ``threshold``.
            Required when the checkpoint has none.
        instance_dir: folder for the CKKS key file, the HMAC key, the Flask secret
            and the SQLite database (created with mode 0700; key files 0600).
        db: SQLAlchemy URL of the operator/subject table (default: SQLite in ``instance_dir``).
        matcher_url: base URL of the matcher service (``https://...`` in any deployment beyond one machine).
        matcher_ca: PEM CA the matcher's certificate must chain to (pinned: the system's CAs are not
            consulted); None: the system's CAs.
        matcher_client_cert, matcher_client_key: PEM client certificate and key presented to a matcher
            that requires mutual TLS.
        matcher_api_key: bearer key issued by ``facepp-matcher create-api-key``.
        matcher_timeout: seconds per matcher request (blocks are ~34 MB).
        register_on_start: PUT the public bundle to the matcher when the app starts.
        api_token: bearer token of the terminal's JSON API (``/api``); the API answers
            401 to everything while it is unset.
        secret_key: Flask session key (default: random, stored in ``instance_dir``).
        host, port: where ``facepp-terminal serve`` listens (loopback by default).
        threads: worker threads.
        max_upload_bytes: largest request body (413 above).
        max_images: most images per enrolment request.
        login_rate_limit, match_rate_limit, api_rate_limit: flask-limiter rates
            (per client address) for login POSTs, verify/identify and the JSON API.
        score_decimals: decimals of every score shown or returned (CKKS caveat:
            full-precision decrypted scores are never exposed).
        top_k: default identification list length; ``max_top_k`` caps requests.
        secure_cookies: mark session cookies ``Secure`` (off only for plain-HTTP tests/dev).
        session_idle_timeout: seconds without a request after which a login session ends.
        session_lifetime: seconds after login at which a session ends however active it is.
        torch_threads: CPU threads for the embedding network.
        id_hex_chars: length of the opaque subject id (hex of HMAC-SHA256, 16..64).
        tls_cert, tls_key: PEM certificate and key to serve HTTPS with (plain HTTP without them).
        tls_client_ca: PEM CA: require client certificates it signed (mutual TLS).
        insecure_http: allow plain HTTP on a non-loopback ``host`` (logged as a warning).
        trusted_proxies: addresses or networks of reverse proxies whose ``X-Forwarded-For``,
            ``-Proto``, ``-Host``, ``-Port`` and ``-Prefix`` are believed; from any other peer they are ignored.
    """

    SECTION: ClassVar[str] = "terminal"
    ENV_PREFIX: ClassVar[str] = ENV_PREFIX

    checkpoint: str | None = None
    threshold: float | None = None
    instance_dir: str = "out/terminal"
    db: str | None = None
    matcher_url: str = "http://127.0.0.1:8600"
    matcher_ca: str | None = None
    matcher_client_cert: str | None = None
    matcher_client_key: str | None = None
    matcher_api_key: str | None = None
    matcher_timeout: float = 120.0
    register_on_start: bool = True
    api_token: str | None = None
    secret_key: str | None = None
    host: str = "127.0.0.1"
    port: int = 8500
    threads: int = 8
    max_upload_bytes: int = 8 * MiB
    max_images: int = 10
    login_rate_limit: str = "10 per minute"
    match_rate_limit: str = "120 per minute"
    api_rate_limit: str = "6000 per minute"
    score_decimals: int = 3
    top_k: int = 5
    max_top_k: int = 50
    secure_cookies: bool = True
    session_idle_timeout: int = 15 * 60
    session_lifetime: int = 8 * 3600
    torch_threads: int = 1
    id_hex_chars: int = 32
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    insecure_http: bool = False
    trusted_proxies: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.port < 65536:
            raise ConfigError(f"port must be in 0..65535, got {self.port}")
        if self.threads < 1 or self.torch_threads < 1:
            raise ConfigError("threads and torch_threads must be >= 1")
        if self.max_upload_bytes < 1024:
            raise ConfigError("max_upload_bytes must be at least 1024")
        if self.max_images < 1:
            raise ConfigError("max_images must be >= 1")
        if not 1 <= self.score_decimals <= 4:
            raise ConfigError(f"score_decimals must be in 1..4 (never full precision), got {self.score_decimals}")
        if not 1 <= self.top_k <= self.max_top_k:
            raise ConfigError(f"need 1 <= top_k <= max_top_k, got {self.top_k}, {self.max_top_k}")
        if not 16 <= self.id_hex_chars <= 64:
            raise ConfigError(f"id_hex_chars must be in 16..64, got {self.id_hex_chars}")
        if self.api_token is not None and len(self.api_token) < 16:
            raise ConfigError("api_token must be at least 16 characters")
        if not 1 <= self.session_idle_timeout <= self.session_lifetime:
            raise ConfigError("need 1 <= session_idle_timeout <= session_lifetime (seconds), got "
                              f"{self.session_idle_timeout} and {self.session_lifetime}")
        if self.matcher_timeout <= 0:
            raise ConfigError("matcher_timeout must be > 0")
        for proxy in self.trusted_proxies:
            proxy_network(proxy)

    @property
    def tls(self) -> ServerTLS:
        """How ``facepp-terminal serve`` speaks TLS (raises UsageError on an incomplete pair)."""
        return ServerTLS(cert=self.tls_cert, key=self.tls_key, client_ca=self.tls_client_ca,
                         insecure_http=self.insecure_http)

    @property
    def matcher_tls(self) -> dict[str, Any]:
        """``verify`` and ``cert`` of the terminal's requests to the matcher.

        Raises:
            UsageError: only one of ``matcher_client_cert`` and ``matcher_client_key``.
        """
        if bool(self.matcher_client_cert) != bool(self.matcher_client_key):
            raise UsageError("--matcher-client-cert and --matcher-client-key go together")
        cert = (self.matcher_client_cert, self.matcher_client_key) if self.matcher_client_cert else None
        return {"verify": self.matcher_ca or True, "cert": cert}

    @property
    def db_url(self) -> str:
        """The SQLAlchemy URL (a plain path is taken as an SQLite file)."""
        value = self.db or str(Path(self.instance_dir) / "terminal.db")
        return value if "://" in value else f"sqlite:///{Path(value).resolve()}"

    def describe(self) -> dict[str, Any]:
        """The settings with secrets masked (for logs)."""
        return {
            f.name: ("***" if f.name in SECRET_FIELDS and getattr(self, f.name) else getattr(self, f.name))
            for f in fields(self)
        }
