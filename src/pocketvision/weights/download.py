"""The weights cache: download once, check the sha256, never leave a half-written file.

Files live in ``$POCKETVISION_HOME/weights`` (default ``~/.cache/pocketvision/weights``).
A download streams into a temporary file in the same folder and is renamed into place only
after its sha256 matched the published one (or its published prefix, as torchvision
publishes); a mismatch deletes it and says so. Where no hash is published the hash of the
first download is recorded beside the file (``NAME.sha256``) and checked on every later use.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from pocketvision.errors import PocketvisionError
from pocketvision.files import pocketvision_home
from pocketvision.weights.table import Checkpoint

CHUNK = 1 << 16


def cache_dir() -> Path:
    return pocketvision_home() / "weights"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _matches(digest: str, published: str) -> bool:
    return digest.startswith(published.lower())


def cached_path(ckpt: Checkpoint) -> Path:
    return cache_dir() / f"{ckpt.model}.{ckpt.tag}{Path(ckpt.url).suffix or '.pth'}"


def verified(path: Path, ckpt: Checkpoint) -> str:
    """The file's sha256, checked against the published or the recorded one."""
    digest = sha256_of(path)
    recorded = path.with_name(path.name + ".sha256")
    expected = ckpt.sha256 or (recorded.read_text().strip() if recorded.exists() else None)
    if expected and not _matches(digest, expected):
        path.unlink()
        raise PocketvisionError(
            f"{path}: sha256 {digest[:16]}... does not match {expected}; the file was removed"
        )
    return digest


def fetch(ckpt: Checkpoint, *, progress: bool = True, timeout: float = 30.0) -> tuple[Path, str]:
    """The checkpoint's file in the cache, downloaded if absent; (path, sha256)."""
    path = cached_path(ckpt)
    if path.exists():
        return path, verified(path, ckpt)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            digest = _download(ckpt, out, progress, timeout)
        if ckpt.sha256 and not _matches(digest, ckpt.sha256):
            raise PocketvisionError(
                f"{ckpt.url}: downloaded file's sha256 {digest[:16]}... does not match the "
                f"published {ckpt.sha256}; the file was removed"
            )
        if not ckpt.sha256:
            path.with_name(path.name + ".sha256").write_text(digest + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path, digest


def _offline(ckpt: Checkpoint, why: object) -> PocketvisionError:
    return PocketvisionError(
        f"cannot download {ckpt.url} ({why}); fetch it elsewhere and pass "
        f"--pretrained FILE (or pretrained='FILE')"
    )


def _download(ckpt: Checkpoint, out: object, progress: bool, timeout: float) -> str:
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    digest = hashlib.sha256()
    try:
        response = urllib.request.urlopen(ckpt.url, timeout=timeout)
    except urllib.error.HTTPError as err:
        raise _offline(ckpt, f"HTTP {err.code}") from None
    except (urllib.error.URLError, OSError) as err:
        raise _offline(ckpt, getattr(err, "reason", err)) from None
    total = int(response.headers.get("Content-Length") or 0) or ckpt.size_bytes
    got = 0
    columns = (
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
    )
    with response, Progress(*columns, disable=not progress, transient=True) as bar:
        task = bar.add_task(f"{ckpt.model} {ckpt.tag}", total=total)
        try:
            for block in iter(lambda: response.read(CHUNK), b""):
                digest.update(block)
                out.write(block)  # type: ignore[attr-defined]
                got += len(block)
                bar.update(task, advance=len(block))
        except (OSError, urllib.error.URLError) as err:
            raise _offline(ckpt, f"connection lost after {got} bytes: {err}") from None
    length = response.headers.get("Content-Length")
    if length is not None and got != int(length):
        raise _offline(ckpt, f"truncated: {got} of {length} bytes")
    return digest.hexdigest()
