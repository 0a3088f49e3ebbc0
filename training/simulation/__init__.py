"""A whole federation on one machine, next to its plaintext twin, and the privacy audit.

TRUSTED host: it runs the key ceremony, so it may import every role.
``simulate`` (``facepp simulate``: real server and participant processes on
loopback), ``audit`` (search what the server received and stored for
plaintext), ``cli`` (the ``simulate`` subcommand, registered through the
``facepp.commands`` entry point).
"""
