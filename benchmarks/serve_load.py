"""`pocketvision serve` under a bounded loopback load: throughput, latency, memory.

A real server process (LeNet-5 trained on digits, unless --run names another run) gets
--clients concurrent clients for --seconds, repeated --repeats times. Each client sends a
mix: valid digit PNGs (must be 200) and hostile uploads (garbage, a truncated PNG, a
decompression bomb, a body over the 10 MB limit: must be 413/415). Meanwhile --slow clients
trickle header lines and reconnect whenever the server cuts them off (after --timeout s).

Reported per repeat and as mean/std over repeats: requests/s, p50/p99 latency of the valid
requests, errors (a valid request not answered 200, a hostile one not refused with 4xx),
slow clients cut off, and the server's resident memory (start, peak, end of each repeat:
growth that tracked the number of requests would show here).

    python benchmarks/serve_load.py                           # 3 x 60 s, 32 clients, 20 slow
    python benchmarks/serve_load.py --seconds 10 --repeats 2  # quick

Writes benchmarks/results/serve_load.json (see --out).
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pocketvision.environment import environment

RESULTS = Path(__file__).resolve().parent / "results"
MB = 1024 * 1024


def rss_mb(pid: int) -> float:
    found = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(found.group(1)) / 1024 if found else float("nan")


def multipart(data: bytes) -> tuple[bytes, str]:
    head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n\r\n'
    return head + data + b"\r\n--b--\r\n", "multipart/form-data; boundary=b"


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def bomb_png(side: int = 30_000) -> bytes:
    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(b"\x00" * 64))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + idat + chunk(b"IEND", b"")


def bodies() -> tuple[list[bytes], list[bytes]]:
    """(valid uploads, hostile uploads), multipart-encoded."""
    from pocketvision.data import load_data
    from pocketvision.preprocess import Preprocessing

    split = load_data("digits", Preprocessing(input_size=(1, 32, 32), mean=(0.5,), std=(0.5,))).test
    assert split is not None
    digits = [png(split.images[i, 0].numpy()) for i in range(0, 200, 10)]
    hostile = [b"not an image\n" * 100, digits[0][: len(digits[0]) // 2], bomb_png()]
    hostile.append(b"\x00" * (10 * MB + 1))  # over the limit
    return [multipart(d)[0] for d in digits], [multipart(h)[0] for h in hostile]


def request(port: int, body: bytes) -> tuple[int, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    t0 = time.perf_counter()
    try:
        conn.request(
            "POST", "/api/predict", body, {"Content-Type": "multipart/form-data; boundary=b"}
        )
        response = conn.getresponse()
        response.read()
        status = response.status
    except OSError:
        status = 0
    finally:
        conn.close()
    return status, time.perf_counter() - t0


def slowloris(port: int, stop: threading.Event, cut: list[float]) -> None:
    """Trickle header lines; reconnect each time the server closes; record how long each lasted."""
    while not stop.is_set():
        start = time.monotonic()
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            sock.settimeout(0.5)
            while not stop.is_set():
                sock.sendall(b"X-Slow: 1\r\n")
                try:
                    if not sock.recv(1024):
                        cut.append(time.monotonic() - start)
                        break
                except TimeoutError:
                    pass
            sock.close()
        except OSError:
            cut.append(time.monotonic() - start)


def repeat(
    port: int, pid: int, args: argparse.Namespace, valid: list[bytes], hostile: list[bytes]
) -> dict[str, Any]:
    stop = threading.Event()
    latencies: list[float] = []
    errors = {"valid_not_200": 0, "hostile_not_4xx": 0}
    counts = {"valid": 0, "hostile": 0}
    lock = threading.Lock()
    cut: list[float] = []

    def client(index: int) -> None:
        rng = np.random.default_rng(index)
        while not stop.is_set():
            is_hostile = rng.random() < args.hostile
            pool = hostile if is_hostile else valid
            status, seconds = request(port, pool[int(rng.integers(len(pool)))])
            with lock:
                if is_hostile:
                    counts["hostile"] += 1
                    errors["hostile_not_4xx"] += not 400 <= status < 500
                else:
                    counts["valid"] += 1
                    errors["valid_not_200"] += status != 200
                    latencies.append(seconds)

    rss_start = rss_mb(pid)
    threads = [threading.Thread(target=slowloris, args=(port, stop, cut)) for _ in range(args.slow)]
    threads += [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    peak = rss_start
    while time.perf_counter() - start < args.seconds:
        peak = max(peak, rss_mb(pid))
        time.sleep(0.2)
    stop.set()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    ms = np.array(latencies) * 1000
    return {
        "seconds": wall,
        "valid_requests": counts["valid"],
        "hostile_requests": counts["hostile"],
        "requests_per_s": (counts["valid"] + counts["hostile"]) / wall,
        "valid_p50_ms": float(np.percentile(ms, 50)),
        "valid_p99_ms": float(np.percentile(ms, 99)),
        **errors,
        "slow_clients_cut_off": len(cut),
        "slow_client_held_max_s": max(cut, default=0.0),
        "rss_start_mb": rss_start,
        "rss_peak_mb": peak,
        "rss_end_mb": rss_mb(pid),
    }


def train_run(folder: Path) -> Path:
    from pocketvision.train import TrainConfig, train

    out = folder / "lenet5-digits"
    train(
        TrainConfig(
            data="digits",
            model="lenet5",
            epochs=8,
            augment="none",
            out=str(out),
            quiet=True,
            threads=1,
            device="cpu",
            workers=1,
        )
    )
    return out


def start_server(
    run: Path, args: argparse.Namespace, log: Path
) -> tuple[subprocess.Popen[bytes], int]:
    command = [sys.executable, "-m", "pocketvision", "serve", str(run), "--port", "0", "--no-onnx"]
    command += ["--workers", str(args.workers), "--threads", "1", "--timeout", str(args.timeout)]
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            command,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
    deadline = time.monotonic() + 120
    while not (found := re.search(r"serve: http://127\.0\.0\.1:(\d+)/", log.read_text())):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"serve did not start:\n{log.read_text()}")
        time.sleep(0.2)
    return proc, int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, help="a run folder (default: train LeNet-5 on digits)")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--slow", type=int, default=20, help="slowloris clients")
    parser.add_argument("--hostile", type=float, default=0.2, help="fraction of hostile uploads")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="serve --workers")
    parser.add_argument("--timeout", type=float, default=5, help="serve --timeout")
    parser.add_argument("--out", type=Path, default=RESULTS / "serve_load.json")
    args = parser.parse_args()

    import fastapi
    import starlette
    import uvicorn

    valid, hostile = bodies()
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run or train_run(Path(tmp))
        proc, port = start_server(run, args, Path(tmp) / "serve.log")
        try:
            for _ in range(20):  # warm-up
                request(port, valid[0])
            rss_warm = rss_mb(proc.pid)
            repeats = []
            for i in range(args.repeats):
                repeats.append(repeat(port, proc.pid, args, valid, hostile))
                print(f"repeat {i + 1}: {json.dumps(repeats[-1])}", file=sys.stderr)
        finally:
            proc.terminate()
            proc.wait(timeout=10)

    def spread(key: str) -> dict[str, float]:
        values = np.array([r[key] for r in repeats], dtype=float)
        return {
            "mean": float(values.mean()),
            "std": float(values.std()),
            "min": float(values.min()),
            "max": float(values.max()),
        }

    summary = {
        key: spread(key)
        for key in ("requests_per_s", "valid_p50_ms", "valid_p99_ms", "rss_peak_mb", "rss_end_mb")
    }
    result = {
        "benchmark": "serve_load",
        "environment": environment(),
        "versions": {
            "fastapi": fastapi.__version__,
            "starlette": starlette.__version__,
            "uvicorn": uvicorn.__version__,
        },
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "model": "lenet5 1x32x32 (digits)" if args.run is None else str(args.run),
        "load_average_after": list(os.getloadavg()),
        "rss_after_warmup_mb": rss_warm,
        "rss_growth_over_run_mb": repeats[-1]["rss_end_mb"] - rss_warm,
        "errors": sum(r["valid_not_200"] + r["hostile_not_4xx"] for r in repeats),
        "summary": summary,
        "repeats": repeats,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({"errors": result["errors"], **summary}, indent=2))


if __name__ == "__main__":
    main()
