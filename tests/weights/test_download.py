"""The download path against a real HTTP server on 127.0.0.1 (nothing leaves the machine)."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from weights_support import source_state

import pocketvision as pv
from pocketvision.errors import PocketvisionError
from pocketvision.weights import download
from pocketvision.weights.table import find_checkpoint


class _Handler(http.server.BaseHTTPRequestHandler):
    body = b""
    truncate = False

    def do_GET(self) -> None:
        if not self.path.endswith(".pth"):
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body[: len(self.body) // 2] if self.truncate else self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, bytes]]:
    path = tmp_path / "served.pth"
    torch.save(source_state("torchvision.squeezenet", "squeezenet1_1"), path)
    _Handler.body, _Handler.truncate = path.read_bytes(), False
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", _Handler.body
    httpd.shutdown()
    httpd.server_close()


def _ckpt(url: str, sha: str | None):  # type: ignore[no-untyped-def]
    return replace(find_checkpoint("squeezenet1_1"), url=url, sha256=sha)


def _leftovers() -> list[Path]:
    return [p for p in download.cache_dir().glob("*")] if download.cache_dir().exists() else []


def test_good_file_is_cached_checked_and_loaded(server, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    url, body = server
    sha = hashlib.sha256(body).hexdigest()
    ckpt = _ckpt(f"{url}/squeezenet1_1-{sha[:8]}.pth", sha[:8])
    path, digest = download.fetch(ckpt, progress=False)
    assert digest == sha and path.read_bytes() == body
    assert path.parent == download.cache_dir() and [p.name for p in _leftovers()] == [path.name]
    monkeypatch.setattr("pocketvision.weights.table.CHECKPOINTS", (ckpt,))
    model = pv.create_model("squeezenet1_1", pretrained=True)
    assert model.pretrained.sha256 == sha and model.pretrained.tag == ckpt.tag
    # a corrupted cached file is caught on the next use, removed, and said so
    path.write_bytes(body[:-1] + b"x")
    with pytest.raises(PocketvisionError, match=r"does not match.*was removed"):
        download.fetch(ckpt, progress=False)
    assert not path.exists()


def test_unpublished_hash_is_recorded_and_held(server) -> None:  # type: ignore[no-untyped-def]
    url, _ = server
    path, digest = download.fetch(_ckpt(f"{url}/m.pth", None), progress=False)
    assert path.with_name(path.name + ".sha256").read_text().strip() == digest
    path.write_bytes(b"tampered")
    with pytest.raises(PocketvisionError, match="does not match"):
        download.fetch(_ckpt(f"{url}/m.pth", None), progress=False)


def test_wrong_hash_removes_the_file_and_says_so(server) -> None:  # type: ignore[no-untyped-def]
    url, _ = server
    with pytest.raises(
        PocketvisionError, match="does not match the published deadbeef; the file was removed"
    ):
        download.fetch(_ckpt(f"{url}/x-deadbeef.pth", "deadbeef"), progress=False)
    assert _leftovers() == []


def test_truncated_body_leaves_nothing(server) -> None:  # type: ignore[no-untyped-def]
    url, _ = server
    _Handler.truncate = True
    with pytest.raises(
        PocketvisionError, match=r"cannot download .*(truncated|connection lost).*--pretrained FILE"
    ):
        download.fetch(_ckpt(f"{url}/x.pth", None), progress=False)
    assert _leftovers() == []


def test_404_names_the_url(server) -> None:  # type: ignore[no-untyped-def]
    url, _ = server
    with pytest.raises(PocketvisionError, match=rf"cannot download {url}/missing \(HTTP 404\)"):
        download.fetch(_ckpt(f"{url}/missing", None), progress=False)


def test_connection_refused_is_one_line() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/squeezenet1_1-b8a52dc0.pth"
    ckpt = _ckpt(url, "b8a52dc0")
    with pytest.raises(PocketvisionError, match=rf"cannot download {url} .*pass --pretrained FILE"):
        download.fetch(ckpt, progress=False)
    assert _leftovers() == []
