"""What keeps slow and oversized clients from holding ``pocketvision serve``.

- The upload limit holds while the body streams in: over it, 413 at once (declared by
  Content-Length: before any of the body is read). Nothing buffers the body here; the multipart
  parser spools a file part over 1 MB to a temporary file, so a client mid-upload costs about
  1 MB of memory, not the size of its upload.
- A connection closed while its client is still sending a body (413, 408) closes lingering, as
  nginx and Apache do: our side is shut down after the answer, and what the client still sends
  is read and dropped for up to LINGER_SECONDS. Closed at once, the unread bytes make the kernel
  answer with a reset, which can destroy the 413 before the client reads it (CI saw exactly that:
  a client uploading 100 MB got ``b""``).
- Time limits (``timeout`` seconds each, 60 by default): for a request's headers, counted from
  the connection's start or the previous response (uvicorn has none: a client trickling header
  lines kept its connection forever), and again for its body (408, then the connection closes).
  A client trickling a byte at a time is cut off at the deadline, whatever its rate.
- At most ``limit_concurrency`` connections at once (uvicorn answers 503 beyond it), so the
  number of clients in the two phases above is bounded too.

tests/web/test_web_slow_clients.py holds a real server to this under 50 slow clients and
oversized uploads; benchmarks/serve_load.py measures it.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio
import h11
from fastapi import HTTPException
from fastapi.responses import JSONResponse
from uvicorn.protocols.http.h11_impl import H11Protocol

#: Largest accepted upload (the file itself); larger ones get 413.
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
#: Room for the multipart envelope and the small form fields around the file.
BODY_OVERHEAD = 64 * 1024
#: Seconds a connection closed mid-upload keeps reading (and dropping) what its client still
#: sends, so the client can read the answer before the connection goes.
LINGER_SECONDS = 5.0
#: Seconds a client has for a request's headers, and again for its body.
REQUEST_TIMEOUT = 60.0
#: Connections at once; uvicorn answers 503 to more.
LIMIT_CONCURRENCY = 256

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
CLOSE = {"Connection": "close"}


def too_large(size: int) -> str:
    return f"upload of {size / 1e6:.1f} MB is over the {MAX_UPLOAD_BYTES // 2**20} MB limit"


class BodyLimit:
    """ASGI middleware: the upload limit and the body's deadline, enforced as the body streams.

    A Content-Length over ``max_bytes`` gets 413 before the body is read. Otherwise the app's
    reads pass through a counter: past ``max_bytes`` the read raises 413; a body still
    incomplete ``timeout`` seconds after its headers raises 408. Both close the connection, and
    the protocol (H11WithHeaderTimeout) lingers over the rest of the body.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, timeout: float = REQUEST_TIMEOUT) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length", b"").decode("latin-1")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await JSONResponse({"detail": too_large(int(declared))}, 413, CLOSE)(
                scope, receive, send
            )
            return
        deadline = anyio.current_time() + self.timeout
        total = 0

        async def next_message() -> Message:
            left = deadline - anyio.current_time()
            with anyio.move_on_after(max(left, 0)):
                return await receive()
            raise HTTPException(408, f"request body not received within {self.timeout:g} s", CLOSE)

        async def limited() -> Message:
            nonlocal total
            message = await next_message()
            total += len(message.get("body", b""))
            if total > self.max_bytes:
                raise HTTPException(413, too_large(total), CLOSE)
            return message

        await self.app(scope, limited, send)


class _LingeringTransport:
    """The transport as uvicorn's request cycle sees it: ``close()`` closes lingering.

    uvicorn closes the connection itself after a ``Connection: close`` answer; this is the one
    place that close passes through. Everything else goes to the real transport.
    """

    def __init__(self, transport: asyncio.Transport, protocol: H11WithHeaderTimeout) -> None:
        self._transport = transport
        self._protocol = protocol

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def is_closing(self) -> bool:
        return self._protocol.lingering or self._transport.is_closing()

    def close(self) -> None:
        self._protocol.close_lingering()


class H11WithHeaderTimeout(H11Protocol):
    """uvicorn's h11 protocol, with a deadline for request headers and a lingering close.

    Headers: the clock starts when the connection opens and again after each response; when it
    runs out and the client has not finished a request's headers (h11 still waits in IDLE for
    the request line and headers; SEND_BODY or DONE mean they arrived), the connection is
    closed. Keep-alive idling stays uvicorn's (``timeout_keep_alive``, 5 s).

    Lingering: a close while the client is still sending its body (h11's SEND_BODY: the 413 or
    408 went out before the body was read) shuts down our side only, drops what still arrives,
    and closes when the client does or after ``linger_seconds``.
    """

    header_timeout = REQUEST_TIMEOUT
    linger_seconds = LINGER_SECONDS
    lingering = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._raw_transport = transport
        self._linger_timer: asyncio.TimerHandle | None = None
        self.transport = _LingeringTransport(transport, self)  # type: ignore[assignment]
        self._arm_header_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        if not self.lingering:  # while lingering, what the client still sends is dropped
            super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._header_timer, self._linger_timer):
            if timer is not None:
                timer.cancel()
        super().connection_lost(exc)

    def close_lingering(self) -> None:
        raw = self._raw_transport
        if self.lingering or raw.is_closing():
            return
        if self.conn.their_state is not h11.SEND_BODY or not raw.can_write_eof():
            raw.close()
            return
        self.lingering = True
        raw.write_eof()  # after what is buffered (the answer) is sent
        raw.resume_reading()  # uvicorn may have paused it while the app was busy
        self._linger_timer = self.loop.call_later(self.linger_seconds, raw.close)

    def _arm_header_timer(self) -> None:
        previous = getattr(self, "_header_timer", None)
        if previous is not None:
            previous.cancel()
        self._header_timer: asyncio.TimerHandle | None = None
        if math.isfinite(self.header_timeout) and not self.transport.is_closing():
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_late)

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


def protocol_with_header_timeout(timeout: float) -> type[H11WithHeaderTimeout]:
    """The protocol class with its header deadline set (uvicorn takes a class, not an object)."""
    return type("H11WithHeaderTimeout", (H11WithHeaderTimeout,), {"header_timeout": timeout})


#: Allocations from this size up get their own mmap, returned to the OS when freed.
MMAP_THRESHOLD = 4 * 1024 * 1024
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)


def return_large_buffers_to_os() -> bool:
    """Fix glibc's mmap threshold at 4 MB, so a freed upload buffer leaves the process at once.

    By default glibc raises the threshold after each freed large block, so 10 MB uploads read
    in many worker threads end up cached in per-thread arenas: under benchmarks/serve_load.py
    (20 % hostile uploads, some of 10 MB) the server's RSS grew 170-240 MB and stayed there;
    with the threshold fixed it grows about 30 MB, at the same throughput. Does nothing (False)
    where the C library is not glibc.
    """
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others: no mallopt, nothing to tune
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))


def uvicorn_config(app: ASGIApp, *, timeout: float = REQUEST_TIMEOUT) -> Any:
    """The uvicorn.Config `pocketvision serve` runs ``app`` with (tests start the same one)."""
    import uvicorn

    return uvicorn.Config(
        app,
        http=protocol_with_header_timeout(timeout),
        limit_concurrency=LIMIT_CONCURRENCY,
        log_level="warning",
        access_log=False,
    )
