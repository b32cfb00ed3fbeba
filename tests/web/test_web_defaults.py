"""Safe defaults of `pocketvision serve`: no other site's page may read the API unless asked
(--cors), no directory listing, and a bind beyond loopback says so."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from web_support import Server

from pocketvision.cli import main

pytestmark = pytest.mark.xdist_group("web")


def _request(url: str, method: str = "GET", **headers: str) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(url, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}


def test_no_cors_and_no_listing_by_default(server: Server) -> None:
    status, headers = _request(server.url + "/api/model", Origin="http://evil.test")
    assert status == 200 and "access-control-allow-origin" not in headers
    preflight = {"Origin": "http://evil.test", "Access-Control-Request-Method": "POST"}
    status, headers = _request(server.url + "/api/predict", "OPTIONS", **preflight)
    assert status >= 400 and "access-control-allow-origin" not in headers
    for folder in ("/static/", "/static/vendor/", "/static", "/api/"):
        assert _request(server.url + folder)[0] == 404, folder


def test_cors_is_for_the_asked_origin_only_and_a_wide_bind_warns(web_run: Path) -> None:
    log = web_run.parent / "serve_wide.log"
    command = [sys.executable, "-m", "pocketvision", "serve", str(web_run), "--host", "0.0.0.0"]
    command += ["--port", "0", "--workers", "1", "--threads", "1", "--cors", "http://app.test"]
    with log.open("wb") as sink:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 150
        while not (found := re.search(r"serve: http://0\.0\.0\.0:(\d+)/", log.read_text())):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.25)
        url = f"http://127.0.0.1:{found.group(1)}"
        while _request(url + "/api/health")[0] != 200:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.25)
        printed = log.read_text()
        assert "warning: listening on 0.0.0.0, reachable from other machines" in printed
        assert "pages from http://app.test may call this API" in printed
        asked = _request(url + "/api/model", Origin="http://app.test")[1]
        assert asked["access-control-allow-origin"] == "http://app.test"
        other = _request(url + "/api/model", Origin="http://evil.test")[1]
        assert "access-control-allow-origin" not in other
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_bad_origin_is_one_line(web_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", str(web_run), "--port", "0", "--cors", "app.test/page"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--cors 'app.test/page': not an origin" in err
