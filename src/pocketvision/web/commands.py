"""``pocketvision serve RUN``: the browser demo and JSON API for one trained run."""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import sys
import urllib.parse
from collections.abc import Sequence
from pathlib import Path

from pocketvision.errors import PocketvisionError


def serve(
    run_dir: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    workers: int | None = None,
    threads: int | None = None,
    export_onnx: bool = True,
    timeout: float | None = None,
    cors: Sequence[str] = (),
) -> None:
    """Load a run, export it to ONNX for the browser if needed, and serve until interrupted.

    Args:
        run_dir: A run directory written by ``pocketvision train``.
        host: Interface to listen on; loopback by default, so nothing outside this machine
            can reach the server unless asked for.
        port: TCP port; 0 picks a free one (the printed URL shows which).
        workers: Decode/inference jobs at once; None: the CPU count.
        threads: torch intra-op threads per forward pass; None: the CPU count / workers.
        export_onnx: Make RUN/web/model.onnx for in-browser inference (cached).
        timeout: Seconds a client has to send a request's headers, and again its body;
            None: :data:`pocketvision.web.limits.REQUEST_TIMEOUT` (60).
        cors: Origins whose pages may call the API from a browser (none by default).

    Raises:
        PocketvisionError: the run cannot be loaded, the port is out of range or taken, or
            the timeout is not positive, or an origin is not scheme://host[:port].
    """
    _check_options(port, timeout, cors)
    import torch
    import uvicorn

    from pocketvision.web.app import create_app
    from pocketvision.web.limits import (
        REQUEST_TIMEOUT,
        return_large_buffers_to_os,
        uvicorn_config,
    )
    from pocketvision.web.served import load_served

    jobs = workers or os.cpu_count() or 1
    # jobs x threads should not exceed the cores: small models gain more from parallel requests
    torch.set_num_threads(threads or max(1, (os.cpu_count() or 1) // jobs))
    # bind before the slow start-up, so a taken port fails fast and in one line
    sock = _bind(host, port)
    print(f"loading {run_dir} (exporting ONNX for the browser if needed)", file=sys.stderr)
    try:
        served = load_served(run_dir, export_onnx=export_onnx)
    except BaseException:
        sock.close()
        raise
    if served.onnx_error:
        print(f"in-browser inference off: {served.onnx_error}", file=sys.stderr)
    timeout = timeout or REQUEST_TIMEOUT
    app = create_app(served, workers=workers, timeout=timeout, cors=cors)
    bound = sock.getsockname()[1]
    _announce(host, bound, cors)
    return_large_buffers_to_os()  # memory stays flat under large uploads (see its docstring)
    uvicorn.Server(uvicorn_config(app, timeout=timeout)).run(sockets=[sock])


def _announce(host: str, port: int, cors: Sequence[str]) -> None:
    """The lines a user needs once the server is up: where, and who else may reach it."""
    shown = f"[{host}]" if ":" in host else host
    print(f"pocketvision serve: http://{shown}:{port}/  (Ctrl+C stops)", file=sys.stderr)
    if not _is_loopback(host):
        print(f"warning: listening on {host}, reachable from other machines", file=sys.stderr)
    if cors:
        print(f"pages from {', '.join(cors)} may call this API (--cors)", file=sys.stderr)


def _check_options(port: int, timeout: float | None, cors: Sequence[str]) -> None:
    """One-line errors for a port out of range, a timeout <= 0, or an origin that is not one."""
    if not 0 <= port <= 65535:
        raise PocketvisionError(f"--port {port}: must be 0-65535")
    if timeout is not None and not timeout > 0:
        raise PocketvisionError(f"--timeout {timeout}: must be a positive number of seconds")
    for origin in cors:
        if not _is_origin(origin):
            raise PocketvisionError(
                f"--cors {origin!r}: not an origin (scheme://host[:port], e.g. https://app.example)"
            )


def _bind(host: str, port: int) -> socket.socket:
    """A listening-ready socket on host:port (port 0: any free port)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as err:
        raise PocketvisionError(f"--host {host}: cannot resolve ({err.strerror})") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as err:
        sock.close()
        raise PocketvisionError(
            f"cannot listen on {host}:{port} ({err.strerror}); pick another --port"
        ) from None
    sock.set_inheritable(True)
    return sock


def _is_origin(origin: str) -> bool:
    parts = urllib.parse.urlsplit(origin)
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and not parts.path
        and not parts.query
        and not parts.fragment
        and "@" not in parts.netloc
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _serve(args: argparse.Namespace) -> int:
    serve(
        args.run,
        args.host,
        args.port,
        workers=args.workers,
        threads=args.threads,
        export_onnx=not args.no_onnx,
        timeout=args.timeout,
        cors=args.cors or (),
    )
    return 0


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``serve`` to the ``pocketvision`` parser."""
    p = subparsers.add_parser(
        "serve",
        help="web page and JSON API for a trained run (draw, upload, webcam, playground)",
        description="Serve a trained run: a page that classifies uploads, drawings and the "
        "webcam on the server or in the browser (onnxruntime-web), a convolution playground "
        "and the model card, plus a JSON API (POST /api/predict, GET /api/model).",
    )
    p.add_argument("run", help="run directory written by `pocketvision train`")
    p.add_argument("--host", default="127.0.0.1", help="interface (default: loopback only)")
    p.add_argument(
        "--port", type=int, default=8000, help="TCP port (default: 8000; 0: any free port)"
    )
    p.add_argument(
        "--workers", type=int, default=None, help="inference jobs at once (default: CPU count)"
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads per forward pass (default: CPUs / workers)",
    )
    p.add_argument(
        "--no-onnx", action="store_true", help="skip the ONNX export (server inference only)"
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds a client has to send a request's headers, and again its body "
        "(default: 60; slower clients are cut off)",
    )
    p.add_argument(
        "--cors",
        action="append",
        metavar="ORIGIN",
        help="let pages from ORIGIN (https://app.example) call the API from a browser; "
        "repeatable (default: no other origin may)",
    )
    p.set_defaults(func=_serve)
