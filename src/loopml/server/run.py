"""Run the tracking server under uvicorn (what ``loopml server`` calls)."""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import socket

from fastapi import FastAPI

logger = logging.getLogger("loopml.server")

# Worker processes rebuild the app from these options (uvicorn imports a factory by name).
_OPTIONS_ENV = "LOOPML_SERVER_OPTIONS"
_ALL_INTERFACES = ("0.0.0.0", "::", "")


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (``127.0.0.0/8``, ``::1``, ``localhost``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def hosts_for_bind(host: str, allowed_hosts: list[str] | None = None) -> list[str]:
    """Return the Host allowlist for a server bound to ``host``.

    Binding to a specific non-loopback address allows that address. Binding to every
    interface allows this machine's host name, fully qualified name and addresses; other
    names clients use (a DNS alias, a load balancer) must be passed in ``allowed_hosts``.

    Parameters
    ----------
    host : str
        The bind address.
    allowed_hosts : list of str, optional
        Names the operator allows explicitly.

    Returns
    -------
    list of str
        The extra names to allow, beyond the loopback defaults.
    """
    names = list(allowed_hosts or [])
    if host in _ALL_INTERFACES:
        hostname = socket.gethostname()
        names += [hostname, socket.getfqdn()]
        try:
            names += socket.gethostbyname_ex(hostname)[2]
        except OSError:
            pass
    elif not is_loopback(host):
        names.append(host.strip("[]"))
    return list(dict.fromkeys(n for n in names if n))


def _app_from_env() -> FastAPI:
    """Build the app in a uvicorn worker process from the options the parent exported."""
    from loopml.server.app import create_app

    options = json.loads(os.environ.get(_OPTIONS_ENV, "{}"))
    return create_app(auth=bool(options.get("auth")), allowed_hosts=options.get("allowed_hosts"))


def serve(
    host: str = "127.0.0.1",
    port: int = 5000,
    *,
    auth: bool = False,
    allowed_hosts: list[str] | None = None,
    workers: int = 1,
    log_level: str = "info",
) -> None:
    """Serve the tracking API until interrupted.

    Parameters
    ----------
    host : str, default "127.0.0.1"
        Bind address. A non-loopback address is added to the Host allowlist.
    port : int, default 5000
        TCP port.
    auth : bool, default False
        Require bearer tokens (create them with :class:`loopml.auth.AuthService`).
    allowed_hosts : list of str, optional
        Further ``Host`` names to accept (``"*"`` for any).
    workers : int, default 1
        Worker processes; more than one runs the app from an import string.
    log_level : str, default "info"
        uvicorn's log level.

    Raises
    ------
    InvalidInput
        When the settings cannot be served (see :func:`loopml.server.app.create_app`).
    """
    import uvicorn

    from loopml.server.app import create_app

    hosts = hosts_for_bind(host, allowed_hosts)
    if not is_loopback(host) and not auth:
        logger.warning(
            "serving on %s without --auth: anyone who can reach it can change tracking data", host
        )
    # Built here even with several workers: errors surface before binding, and the
    # schema migrations run once instead of racing in every worker.
    app = create_app(auth=auth, allowed_hosts=hosts)
    if workers <= 1:
        uvicorn.run(app, host=host, port=port, log_level=log_level)
        return
    os.environ[_OPTIONS_ENV] = json.dumps({"auth": auth, "allowed_hosts": hosts})
    uvicorn.run(
        "loopml.server.run:_app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
    )
