"""The sha256 sidecar of every file we ship or export (`NAME.sha256` beside `NAME`, as
`sha256sum` writes it): written with the file, checked before the file is parsed."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path) -> str:
    return sha256_bytes(Path(path).read_bytes())


def sidecar(path) -> Path:
    return Path(f"{path}.sha256")


def write_with_sidecar(path, data: bytes) -> Path:
    """`path` holding `data`, and its sidecar."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    sidecar(path).write_text(f"{sha256_bytes(data)}  {path.name}\n")
    return path


def read_checked(path, error: type[Exception], what: str) -> bytes:
    """The bytes of `path` (a `what`, e.g. "model") if its sidecar vouches for them; else
    `error` with one line saying what is wrong."""
    path, recorded = Path(path), sidecar(path)
    if not path.is_file():
        raise error(f"{what} not found: {path}")
    if not recorded.is_file():
        raise error(f"{path}: no recorded hash ({recorded.name} is missing)")
    data = path.read_bytes()
    if sha256_bytes(data) != (recorded.read_text().split() or [""])[0]:
        raise error(f"{path}: sha256 differs from {recorded.name} (corrupt or truncated)")
    return data
