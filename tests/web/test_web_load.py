"""A bounded load test on loopback: 200 predictions, 8 at a time, zero errors.

The latencies (p50/p95 of the whole HTTP round trip) go to test-artifacts/web/load.json and
the test output, so a run of the suite records them.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from web_support import ARTIFACTS, Server, digit_images, multipart, png_bytes

pytestmark = pytest.mark.xdist_group("web")

REQUESTS = 200
CONCURRENCY = 8


def test_200_requests_8_concurrent_without_errors(server: Server) -> None:
    images, _ = digit_images(REQUESTS // 20)
    bodies = [multipart({}, png_bytes(image)) for image in images]
    parsed = urllib.parse.urlsplit(server.url)
    expected: dict[int, str] = {}

    def one(i: int) -> tuple[int, float, str]:
        body, ctype = bodies[i % len(bodies)]
        # a connection per request, as independent clients would open
        conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
        t0 = time.perf_counter()
        conn.request("POST", "/api/predict", body=body, headers={"Content-Type": ctype})
        response = conn.getresponse()
        payload = response.read()
        elapsed = time.perf_counter() - t0
        conn.close()
        top1 = json.loads(payload)["predictions"][0]["label"] if response.status == 200 else ""
        return response.status, elapsed, top1

    for i in range(len(bodies)):  # each image's answer, asked alone
        expected[i] = one(i)[2]
    start = time.perf_counter()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        results = list(pool.map(one, range(REQUESTS)))
    wall = time.perf_counter() - start

    statuses = [r[0] for r in results]
    latencies_ms = np.array([r[1] for r in results]) * 1000
    errors = sum(s != 200 for s in statuses)
    wrong = sum(r[2] != expected[i % len(bodies)] for i, r in enumerate(results))
    report = {
        "requests": REQUESTS,
        "concurrency": CONCURRENCY,
        "errors": errors,
        "answers_differing_from_serial": wrong,
        "p50_ms": float(np.percentile(latencies_ms, 50)),
        "p95_ms": float(np.percentile(latencies_ms, 95)),
        "max_ms": float(latencies_ms.max()),
        "requests_per_s": REQUESTS / wall,
        "model": "lenet5 1x32x32, server with --workers 2 --threads 1",
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "load.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nload test: {json.dumps(report)}")
    assert errors == 0, statuses
    assert wrong == 0  # concurrency changes no answer
    # loose bound: LeNet-5 answers in milliseconds; seconds would mean requests queue serially
    assert report["p95_ms"] < 2000, report
