"""Serving the facepp services: gunicorn with TLS, mutual TLS, and plain HTTP on loopback only.

``facepp-server``, ``facepp-matcher serve`` and ``facepp-terminal serve`` hand their
Flask app to :func:`serve`: one gunicorn worker process (the services keep their
state in memory) with threads, HTTPS when given a certificate and key, and client
certificates required and verified against a CA when given one. Without a
certificate a service listens on loopback only, unless ``--insecure-http`` asks
for plain HTTP on another address (logged as a warning).

Any role may import this module: it holds no key of facepp's.
:class:`TrustedProxies` lets a service behind a reverse proxy read
``X-Forwarded-*`` from that proxy's address only.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import ssl
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from gunicorn.app.base import BaseApplication
from werkzeug.middleware.proxy_fix import ProxyFix

from facepp.errors import ConfigError, UsageError

logger = logging.getLogger(__name__)

#: Environment key of gunicorn's client socket (an ``ssl.SSLSocket`` under TLS).
GUNICORN_SOCKET = "gunicorn.socket"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) only accepts connections from this machine."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything


@dataclass(frozen=True)
class ServerTLS:
    """How a service speaks TLS.

    Attributes:
        cert: PEM certificate (chain) to serve HTTPS with; None: plain HTTP.
        key: PEM private key of ``cert``.
        client_ca: PEM CA bundle; when set, every client must present a certificate it signed (mutual TLS).
        insecure_http: allow plain HTTP on a non-loopback address.
    """

    cert: str | None = None
    key: str | None = None
    client_ca: str | None = None
    insecure_http: bool = False

    def __post_init__(self) -> None:
        if bool(self.cert) != bool(self.key):
            raise UsageError("--tls-cert and --tls-key go together")
        if self.client_ca and not self.cert:
            raise UsageError("--tls-client-ca (mutual TLS) needs --tls-cert and --tls-key")

    @property
    def enabled(self) -> bool:
        return bool(self.cert)

    @property
    def mutual(self) -> bool:
        return bool(self.client_ca)

    @property
    def scheme(self) -> str:
        return "https" if self.enabled else "http"

    def check(self, host: str) -> ssl.SSLContext | None:
        """Check that serving on ``host`` is allowed and every TLS file is usable; return the server's context.

        Plain HTTP on a non-loopback ``host`` with ``insecure_http`` is logged as a warning.

        Raises:
            UsageError: plain HTTP on a non-loopback ``host`` without ``insecure_http``.
            ConfigError: a missing or unusable certificate, key or CA file, or a key that does not fit the certificate.
        """
        if not self.enabled:
            if not is_loopback(host):
                if not self.insecure_http:
                    raise UsageError(f"refusing plain HTTP on {host}: give --tls-cert and --tls-key, listen on "
                                     "127.0.0.1, or pass --insecure-http")
                logger.warning("plain HTTP on %s (--insecure-http): tokens, keys and cookies cross the network in the "
                               "clear", host)
            return None
        assert self.cert and self.key  # __post_init__: both or neither
        try:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=self.client_ca)
            context.load_cert_chain(certfile=self.cert, keyfile=self.key)
        except (OSError, ssl.SSLError) as exc:
            files = ", ".join(f for f in (self.cert, self.key, self.client_ca) if f)
            raise ConfigError(f"cannot use the TLS files {files}: {exc}") from None
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.verify_mode = ssl.CERT_REQUIRED if self.mutual else ssl.CERT_NONE
        return context


def add_tls_arguments(parser: argparse.ArgumentParser) -> None:
    """``--tls-cert``, ``--tls-key``, ``--tls-client-ca`` and ``--insecure-http`` (all default to "not given")."""
    group = parser.add_argument_group("TLS (facepp-federation pki makes the files)")
    group.add_argument("--tls-cert", metavar="PEM", help="serve HTTPS with this certificate")
    group.add_argument("--tls-key", metavar="PEM", help="the certificate's private key")
    group.add_argument("--tls-client-ca", metavar="PEM",
                       help="require client certificates signed by this CA (mutual TLS)")
    group.add_argument("--insecure-http", action="store_true", default=None,
                       help="allow plain HTTP on a non-loopback address (logs a warning)")


def tls_of(args: argparse.Namespace) -> ServerTLS:
    """The :class:`ServerTLS` of the flags of :func:`add_tls_arguments`."""
    return ServerTLS(cert=args.tls_cert, key=args.tls_key, client_ca=args.tls_client_ca,
                     insecure_http=bool(args.insecure_http))


def client_common_name(environ: dict[str, Any]) -> str | None:
    """The CN of the client certificate the TLS layer verified for this request (None without one)."""
    getpeercert = getattr(environ.get(GUNICORN_SOCKET), "getpeercert", None)
    cert = getpeercert() if getpeercert else None
    for rdn in (cert or {}).get("subject", ()):
        for attribute, value in rdn:
            if attribute == "commonName":
                return str(value)
    return None


def serve(build_app: Callable[[], Any], *, name: str, host: str, port: int, threads: int, tls: ServerTLS,
          timeout: int = 120, worker_init: Callable[[Any], None] | None = None) -> int:
    """Check ``tls``, build the WSGI app, and serve it with gunicorn until stopped (SIGINT or SIGTERM).

    The app is built only once the address and the TLS files passed :meth:`ServerTLS.check`, in this
    process; one gunicorn worker forked from it holds it (its in-memory state is the service's) and
    serves it on ``threads`` threads. ``worker_init(app)`` runs in that worker before it serves: the
    place for state that does not survive a fork (threads, Ray). Gunicorn believes no
    ``X-Forwarded-*`` header itself (see :class:`TrustedProxies`).

    Returns:
        The exit status.

    Raises:
        UsageError: plain HTTP on a non-loopback address without ``tls.insecure_http``.
        ConfigError: unusable TLS files; whatever ``build_app`` raises.
    """
    context = tls.check(host)
    app = build_app()
    options: dict[str, Any] = {
        "bind": f"[{host.strip('[]')}]:{port}" if ":" in host else f"{host}:{port}",
        "workers": 1,
        "worker_class": "gthread",
        "threads": threads,
        "timeout": timeout,
        "graceful_timeout": 10,
        "keepalive": 5,
        "proc_name": name,
        "control_socket_disable": True,
        "forwarded_allow_ips": "",
        "secure_scheme_headers": {},
        "loglevel": logging.getLevelName(logging.getLogger().getEffectiveLevel()).lower(),
    }
    if context is not None:  # gunicorn's own factory would rebuild the context, files and all, per connection
        options.update(certfile=tls.cert, keyfile=tls.key, ca_certs=tls.client_ca,
                       cert_reqs=context.verify_mode, ssl_context=lambda config, factory: context)
    logger.info("%s on %s://%s:%d (%s, %d threads)", name, tls.scheme, host, port,
                "mutual TLS" if tls.mutual else "TLS" if tls.enabled else "plain HTTP", threads)
    return _Gunicorn(app, options, worker_init).serve()


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    """gunicorn in this process, serving an app object built before its worker forks."""

    def __init__(self, app: Any, options: dict[str, Any], worker_init: Callable[[Any], None] | None = None) -> None:
        self.application, self.options, self.worker_init = app, options, worker_init
        self._worker: Any = None
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)
        self.cfg.set("post_fork", self._forked)

    def _forked(self, arbiter: Any, worker: Any) -> None:
        self._worker = worker

    def load(self) -> Any:
        """The app, in the worker (never preloaded in the arbiter), after ``worker_init``.

        ``worker_init`` may take longer than the worker timeout (a large gallery): the worker
        tells the arbiter it is alive meanwhile.
        """
        if self.worker_init is not None:
            done = threading.Event()
            heartbeat = threading.Thread(target=self._heartbeat, args=(done,), name="worker-init-heartbeat",
                                         daemon=True)
            heartbeat.start()
            try:
                self.worker_init(self.application)
            finally:
                done.set()
                heartbeat.join()
        return self.application

    def _heartbeat(self, done: threading.Event) -> None:
        while not done.wait(max(1.0, self.cfg.timeout / 4)):
            if self._worker is not None:
                self._worker.notify()

    def serve(self) -> int:
        arbiter = os.getpid()
        try:
            self.run()
        except SystemExit as exit_:
            if os.getpid() != arbiter:  # the forked worker ends here; it never returns to the caller
                raise
            return exit_.code if isinstance(exit_.code, int) else 1
        return 0


class TrustedProxies:
    """WSGI middleware: werkzeug's ProxyFix, applied only to requests whose peer is a configured proxy.

    A request from any other address keeps its own ``REMOTE_ADDR`` and scheme, whatever
    ``X-Forwarded-*`` headers it carries, so a rate limit keyed on the client address
    cannot be dodged by forging them.

    Args:
        app: The WSGI app.
        proxies: Proxy addresses or networks (``10.0.0.5``, ``172.18.0.0/16``).

    Raises:
        ConfigError: an entry is not an address or network.
    """

    def __init__(self, app: Any, proxies: Iterable[str]) -> None:
        self.networks = tuple(proxy_network(p) for p in proxies)
        self.app = app
        self.fixed = ProxyFix(app, x_for=1, x_proto=1, x_host=1, x_port=1, x_prefix=1)

    def trusts(self, address: str | None) -> bool:
        try:
            ip = ipaddress.ip_address(address or "")
        except ValueError:
            return False
        return any(ip in network for network in self.networks)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        app = self.fixed if self.trusts(environ.get("REMOTE_ADDR")) else self.app
        return app(environ, start_response)


def proxy_network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """A trusted proxy's address or network.

    Raises:
        ConfigError: ``text`` is neither.
    """
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ConfigError(f"trusted proxy {text!r} is not an IP address or network") from None


def tls_reason(exc: BaseException) -> str:
    """OpenSSL's reason inside a TLS error wrapped by requests and urllib3, e.g. "certificate has expired"."""
    pending: list[object] = [exc]
    while pending:
        error = pending.pop()
        if isinstance(error, ssl.SSLCertVerificationError) and error.verify_message:
            return f"certificate verify failed: {error.verify_message}"
        if isinstance(error, ssl.SSLError) and error.reason:
            return error.reason.lower().replace("_", " ")
        if isinstance(error, BaseException):
            pending += [*error.args, getattr(error, "reason", None), error.__cause__, error.__context__]
    return " ".join(str(exc).split())
