"""Corpus downloads: resumable HTTP(S) with Range requests, checksum verification, safe extraction.

* :func:`download` fetches ``url`` to ``dest``. Bytes arrive in ``dest.part``; an interrupted
  transfer (dropped connection, killed process) continues from the bytes already there with a
  ``Range`` request, both on the automatic retries and on the next call. A server that ignores
  ``Range`` (answers 200) is read again from the start. The finished file is checked against the
  expected SHA-256 / MD5 and only then renamed to ``dest``; a mismatch deletes it.
* :func:`extract_tar` unpacks a (compressed) tar archive as a stream into a temporary folder inside
  ``out_dir`` and moves its top-level entries into place only when every member was accepted:
  absolute paths, ``..`` components, links that leave the archive, and device files are refused,
  and nothing of a refused archive is left behind.
* :func:`fetch_corpus` does both and is a no-op the second time (a marker records the extraction).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import socket
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from http.client import HTTPException
from pathlib import Path, PurePosixPath
from typing import Callable, Union

__all__ = ["LJSPEECH_URL", "LJSPEECH_SHA256", "download", "extract_tar", "fetch_corpus", "file_digest"]

PathLike = Union[str, "os.PathLike[str]"]
logger = logging.getLogger("wavediff.data")

LJSPEECH_URL = "https://data.keithito.com/data/speech/LJSpeech-1.1.tar.bz2"
LJSPEECH_SHA256 = "be1a30453f28eb8dd26af4101ae40cbf2c50413b1bb21936cbcdc6fae3de8aa5"  # 2,748,572,632 bytes

_CHUNK = 1 << 20
_NETWORK_ERRORS = (urllib.error.URLError, HTTPException, ConnectionError, socket.timeout, TimeoutError)
_EXTRACTED_MARKER = ".{name}.extracted"


# --------------------------------------------------------------------------------------------------
# Checksums
# --------------------------------------------------------------------------------------------------


def file_digest(path: PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _expected_digests(sha256: str | None, md5: str | None) -> dict[str, str]:
    expected = {}
    for algorithm, value, length in (("sha256", sha256, 64), ("md5", md5, 32)):
        if value is None:
            continue
        value = value.strip().lower()
        if not re.fullmatch(f"[0-9a-f]{{{length}}}", value):
            raise ValueError(f"--{algorithm} must be {length} hexadecimal digits, got {value!r}.")
        expected[algorithm] = value
    return expected


def _check_digests(path: Path, expected: dict[str, str], name: str | None = None) -> str | None:
    """None when ``path`` matches every expected digest, else a sentence naming the mismatch."""
    for algorithm, value in expected.items():
        actual = file_digest(path, algorithm)
        if actual != value:
            return f"{algorithm} mismatch for {name or path.name}: expected {value}, got {actual}"
    return None


# --------------------------------------------------------------------------------------------------
# Download
# --------------------------------------------------------------------------------------------------


def _total_from_content_range(header: str | None) -> int | None:
    """'bytes 100-199/1000' or 'bytes */1000' -> 1000 (None when absent or unknown)."""
    match = re.search(r"/(\d+)\s*$", header or "")
    return int(match.group(1)) if match else None


def _fetch_once(url: str, part: Path, timeout: float, on_bytes: Callable[[int], None]) -> int | None:
    """Append the rest of ``url`` to ``part`` (Range from its size); return the total size if known.

    Raises a network error when the transfer stops early; the bytes received so far stay in part.
    """
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "wavediff-download"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # nothing left to send: part is complete, or longer than the file
            total = _total_from_content_range(e.headers.get("Content-Range"))
            if total is not None and total == have:
                return total
            part.unlink()  # a stale part that does not fit this file: start again
            raise ConnectionError("the partial download does not fit the file on the server; restarting") from None
        raise ValueError(f"cannot download {url}: HTTP {e.code} {e.reason}") from None
    with response:
        content_range = response.headers.get("Content-Range") or ""
        if have and response.status == 206 and not re.match(rf"bytes {have}-", content_range):
            part.unlink()  # the server sent another range than the one asked for: start again
            raise ConnectionError(f"asked for bytes {have}- and got {content_range!r}; restarting")
        if have and response.status == 206:
            total = _total_from_content_range(content_range)
            mode = "ab"
        else:  # 200: the server sends the whole file
            if have:
                logger.info("server ignored the Range request; downloading %s from the start", url)
                on_bytes(-have)
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            mode = "wb"
        with open(part, mode) as handle:
            for block in iter(lambda: response.read(_CHUNK), b""):
                handle.write(block)
                on_bytes(len(block))
    size = part.stat().st_size
    if total is not None and size < total:
        raise ConnectionError(f"connection closed after {size} of {total} bytes")
    return total


def download(
    url: str,
    dest: PathLike,
    sha256: str | None = None,
    md5: str | None = None,
    retries: int = 5,
    timeout: float = 60.0,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``dest`` (resuming a previous attempt) and verify it; return ``dest``.

    A ``dest`` that already exists and matches the checksums is kept as it is. ``retries`` network
    failures in a row are tolerated (each continues with a Range request); after that the error is
    raised and ``dest.part`` is kept for the next call. A checksum mismatch deletes the download and
    raises ValueError.
    """
    dest = Path(dest)
    expected = _expected_digests(sha256, md5)
    if dest.is_file():
        problem = _check_digests(dest, expected)
        if problem is None:
            logger.info("%s already downloaded and verified", dest)
            return dest
        raise ValueError(f"{dest} exists but does not match: {problem}; delete it to download again.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    from tqdm.auto import tqdm

    bar = tqdm(unit="B", unit_scale=True, unit_divisor=1024, desc=dest.name, disable=not progress,
               initial=part.stat().st_size if part.exists() else 0)
    failures = 0
    try:
        while True:
            try:
                total = _fetch_once(url, part, timeout, bar.update)
                break
            except _NETWORK_ERRORS as e:
                failures += 1
                if failures > retries:
                    raise ValueError(
                        f"download of {url} failed {failures} times (last: {e}); run again to resume "
                        f"from the {part.stat().st_size if part.exists() else 0} bytes in {part}"
                    ) from None
                logger.warning("download interrupted (%s); resuming (attempt %d of %d)", e, failures, retries)
                time.sleep(min(2.0 ** (failures - 1) * 0.1, 10.0))
    finally:
        bar.close()
    size = part.stat().st_size
    if total is not None and size != total:
        part.unlink()
        raise ValueError(f"download of {url} has {size} bytes, the server announced {total}; it was deleted")
    problem = _check_digests(part, expected, dest.name)
    if problem is not None:
        part.unlink()
        raise ValueError(f"{problem}; the download was deleted")
    os.replace(part, dest)
    return dest


# --------------------------------------------------------------------------------------------------
# Safe extraction
# --------------------------------------------------------------------------------------------------


def _member_problem(member: tarfile.TarInfo) -> str | None:
    """Why extracting ``member`` could write outside the target folder (or is not a plain entry)."""
    name = member.name.replace("\\", "/")
    path = PurePosixPath(name)
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "has an absolute path"
    if ".." in path.parts:
        return "has a '..' component"
    if member.issym() or member.islnk():
        target = member.linkname.replace("\\", "/")
        if target.startswith("/"):
            return f"is a link to the absolute path {member.linkname!r}"
        # symlinks resolve from the member's folder, hard links from the archive root
        base = path.parent if member.issym() else PurePosixPath()
        depth = 0
        for part in (base / target).parts:
            depth += -1 if part == ".." else (0 if part == "." else 1)
            if depth < 0:
                return f"is a link that leaves the archive ({member.linkname!r})"
    elif not (member.isfile() or member.isdir()):
        return "is a device, FIFO or other special file"
    return None


def extract_tar(archive: PathLike, out_dir: PathLike, overwrite: bool = False) -> list[Path]:
    """Safely extract a .tar / .tar.gz / .tar.bz2 / .tar.xz into ``out_dir``; return its top-level paths.

    The archive is read as a stream (fast for bz2) into a temporary folder inside ``out_dir``; the
    top-level entries are moved into ``out_dir`` only after every member was accepted, so a refused
    or damaged archive leaves nothing behind. A top-level entry that already exists in ``out_dir``
    is an error unless ``overwrite``, which replaces it.
    """
    archive, out_dir = Path(archive), Path(out_dir)
    if not archive.is_file():
        raise ValueError(f"archive {str(archive)!r} does not exist")
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=out_dir))
    try:
        try:
            with tarfile.open(archive, mode="r|*") as tar:
                for member in tar:
                    problem = _member_problem(member)
                    if problem:
                        raise ValueError(f"refusing to extract {archive.name}: member {member.name!r} {problem}")
                    if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12 / 3.11.4: a second guard
                        tar.extract(member, staging, filter="data")
                    else:  # pragma: no cover - old Python
                        tar.extract(member, staging)
        except (tarfile.TarError, EOFError, OSError) as e:
            raise ValueError(f"cannot extract {archive.name}: {e}") from None
        tops = sorted(staging.iterdir())
        if not tops:
            raise ValueError(f"archive {archive.name} is empty")
        clashes = [e.name for e in tops if (out_dir / e.name).exists() or (out_dir / e.name).is_symlink()]
        if clashes and not overwrite:
            raise ValueError(
                f"{out_dir / clashes[0]} already exists; remove it to extract {archive.name} again, "
                "or use it as it is (run.sh: --data-dir)"
            )
        placed = []
        for entry in tops:
            target = out_dir / entry.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
            os.replace(entry, target)
            placed.append(target)
        return placed
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def fetch_corpus(
    url: str,
    download_dir: PathLike,
    sha256: str | None = None,
    md5: str | None = None,
    keep_archive: bool = True,
    progress: bool = True,
) -> Path:
    """Download and extract a corpus archive into ``download_dir``; return the extracted folder.

    The folder is the archive's single top-level directory (``download_dir`` itself when it has
    several entries). A second call finds the extraction marker and returns at once.
    """
    download_dir = Path(download_dir)
    name = url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]
    if not name:
        raise ValueError(f"cannot tell the archive's file name from the URL {url!r}")
    marker = download_dir / _EXTRACTED_MARKER.format(name=name)
    if marker.is_file():
        folder = download_dir / marker.read_text(encoding="utf-8").strip()
        if folder.exists():
            logger.info("%s already extracted to %s", name, folder)
            return folder
    archive = download(url, download_dir / name, sha256=sha256, md5=md5, progress=progress)
    logger.info("extracting %s", archive)
    placed = extract_tar(archive, download_dir)
    folder = placed[0] if len(placed) == 1 and placed[0].is_dir() else download_dir
    marker.write_text((folder.name if folder != download_dir else ".") + "\n", encoding="utf-8")
    if not keep_archive:
        archive.unlink()
    return folder
