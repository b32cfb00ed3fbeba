"""Slow and oversized clients against a real `pocketvision serve` on 127.0.0.1.

50 clients trickle header lines (slowloris), 20 send 8 MB of a 10 MB upload and then a byte
at a time, 10 send uploads over the limit (declared, or chunked without a length), while an
ordinary client keeps asking for predictions. The server runs with --timeout 3: every slow
client must be cut off near 3 s (headers: closed; body: 408), every oversized upload refused
with 413, every ordinary request answered, and the server's resident memory must stay
bounded (buffering the slow uploads whole, as it once did, held 20 x 8 MB).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from web_support import ARTIFACTS, Server, digit_images, get, multipart, png_bytes

pytestmark = [pytest.mark.xdist_group("web"), pytest.mark.slow]

MB = 1024 * 1024
TIMEOUT = 3.0  # the server's --timeout
SLOW_HEADERS, SLOW_BODIES, OVERSIZED = 50, 20, 10


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc (Linux)."""
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert found
    return int(found.group(1)) / 1024


@pytest.fixture(scope="module")
def strict_server(web_run: Path) -> Iterator[tuple[Server, int]]:
    """`pocketvision serve RUN --timeout 3` as its own process; (server, pid)."""
    if not Path("/proc/self/status").exists():
        pytest.skip("resident memory is read from /proc (Linux only)")
    log = web_run.parent / "serve-strict.log"
    command = [sys.executable, "-m", "pocketvision", "serve", str(web_run), "--port", "0"]
    command += ["--timeout", str(TIMEOUT), "--workers", "2", "--threads", "1", "--no-onnx"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with log.open("wb") as sink:
        proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 120
        while not (found := re.search(r"serve: (http://127\.0\.0\.1:\d+)/", log.read_text())):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield Server(url=found.group(1), run=web_run, log=log), proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def connect(url: str) -> socket.socket:
    parsed = urllib.parse.urlsplit(url)
    return socket.create_connection((parsed.hostname, parsed.port), timeout=30)


def until_closed(sock: socket.socket, trickle: bytes, every: float, limit: float) -> bytes:
    """Send ``trickle`` every ``every`` s until the server closes; what it answered."""
    sock.settimeout(every)
    answer = b""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        try:
            sock.sendall(trickle)
        except OSError:  # reset: the server closed while we were sending
            break
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            break
        if not data:
            break
        answer += data
    sock.close()
    return answer


def slow_headers(url: str, out: list[tuple[float, bytes]]) -> None:
    sock = connect(url)
    start = time.monotonic()
    sock.sendall(b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    answer = until_closed(sock, b"X-Slow: 1\r\n", 0.5, 30)
    out.append((time.monotonic() - start, answer))


def slow_body(url: str, out: list[tuple[float, bytes]]) -> None:
    sock = connect(url)
    head = (
        "POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\n"
        f"Content-Length: {10 * MB}\r\n\r\n"
        '--b\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
    ).encode()
    start = time.monotonic()
    sock.sendall(head + b"\x00" * (8 * MB))  # most of it at once, then a byte at a time
    answer = until_closed(sock, b"\x00", 0.5, 30)
    out.append((time.monotonic() - start, answer))


def oversized(url: str, declared: bool, out: list[bytes]) -> None:
    sock = connect(url)
    boundary = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
    length = f"Content-Length: {100 * MB}" if declared else "Transfer-Encoding: chunked"
    head = (
        "POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: multipart/form-data; boundary=b\r\n{length}\r\n\r\n"
    ).encode()
    sock.sendall(head)
    chunk = b"\x00" * MB
    framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    answer = b""
    sock.settimeout(0.2)
    try:
        sock.sendall(
            boundary if declared else f"{len(boundary):x}\r\n".encode() + boundary + b"\r\n"
        )
        for _ in range(30):  # 30 MB, or until the server answers
            sock.sendall(chunk if declared else framed)
            try:
                if data := sock.recv(65536):
                    answer += data
                    break
            except TimeoutError:
                pass
        sock.settimeout(10)
        answer += sock.recv(65536)
    except OSError:
        pass
    sock.close()
    out.append(answer)


def test_slow_and_oversized_clients_do_not_hold_the_server(
    strict_server: tuple[Server, int],
) -> None:
    server, pid = strict_server
    body, ctype = multipart({}, png_bytes(digit_images(1)[0][0]))

    def predict() -> tuple[int, float]:
        parsed = urllib.parse.urlsplit(server.url)
        conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
        t0 = time.perf_counter()
        conn.request("POST", "/api/predict", body=body, headers={"Content-Type": ctype})
        status = conn.getresponse()
        status.read()
        conn.close()
        return status.status, time.perf_counter() - t0

    for _ in range(20):  # warm up: the first predictions allocate the model's buffers
        assert predict()[0] == 200
    fds_before = len(os.listdir(f"/proc/{pid}/fd"))
    rss_before = rss_mb(pid)

    headers_out: list[tuple[float, bytes]] = []
    bodies_out: list[tuple[float, bytes]] = []
    oversized_out: list[bytes] = []
    attackers = [
        threading.Thread(target=slow_headers, args=(server.url, headers_out))
        for _ in range(SLOW_HEADERS)
    ]
    attackers += [
        threading.Thread(target=slow_body, args=(server.url, bodies_out))
        for _ in range(SLOW_BODIES)
    ]
    attackers += [
        threading.Thread(target=oversized, args=(server.url, i % 2 == 0, oversized_out))
        for i in range(OVERSIZED)
    ]
    for thread in attackers:
        thread.start()
    answers: list[tuple[int, float]] = []
    peak = rss_before
    while any(t.is_alive() for t in attackers):
        answers.append(predict())
        peak = max(peak, rss_mb(pid))
        time.sleep(0.05)
    for thread in attackers:
        thread.join()
    time.sleep(0.5)
    peak = max(peak, rss_mb(pid))

    statuses = [status for status, _ in answers]
    latencies = np.array([seconds for _, seconds in answers]) * 1000
    held_headers = [seconds for seconds, _ in headers_out]
    held_bodies = [seconds for seconds, _ in bodies_out]
    report = {
        "server_timeout_s": TIMEOUT,
        "slow_header_clients": SLOW_HEADERS,
        "slow_body_clients": SLOW_BODIES,
        "oversized_uploads": OVERSIZED,
        "ordinary_requests": len(answers),
        "ordinary_errors": sum(s != 200 for s in statuses),
        "ordinary_p50_ms": float(np.percentile(latencies, 50)),
        "ordinary_p99_ms": float(np.percentile(latencies, 99)),
        "slow_headers_held_max_s": max(held_headers),
        "slow_bodies_held_max_s": max(held_bodies),
        "rss_before_mb": rss_before,
        "rss_peak_mb": peak,
        "rss_growth_mb": peak - rss_before,
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "slow_clients.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nslow clients: {json.dumps(report)}")

    assert statuses and all(s == 200 for s in statuses), statuses
    assert report["ordinary_p99_ms"] < 2000, report
    # every slow client was cut off at the deadline, not left to trickle (each tried for 30 s)
    assert len(held_headers) == SLOW_HEADERS and max(held_headers) < TIMEOUT + 3, held_headers
    assert len(held_bodies) == SLOW_BODIES and max(held_bodies) < TIMEOUT + 3, held_bodies
    assert all(b" 408 " in answer.split(b"\r\n")[0] for _, answer in bodies_out), bodies_out[:1]
    assert all(answer == b"" for _, answer in headers_out)  # closed without an answer
    for answer in oversized_out:
        assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
        assert b"over the 10 MB limit" in answer and b"content-security-policy" in answer
    # 20 x 8 MB sat in the server's memory when bodies were buffered whole; now each is spooled
    assert report["rss_growth_mb"] < 80, report
    # and every connection is gone again
    assert len(os.listdir(f"/proc/{pid}/fd")) <= fds_before + 2
    assert get(server.url + "/api/health")[0] == 200
