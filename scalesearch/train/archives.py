"""Where an image folder is: ``dataset.root`` with ``~`` expanded, or a ``.tar``/``.tar.gz``/``.zip`` of the folder
extracted once into ``$SCALESEARCH_CACHE`` by :func:`safe_extract` (members outside it are refused; a truncated or
corrupt archive is one line), and which files count as images (torchvision's ``IMG_EXTENSIONS``, imported inside
:func:`image_extensions`: a trial's process never loads torchvision).
"""

from __future__ import annotations

import hashlib
import logging
import lzma
import os
import shutil
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path

log = logging.getLogger("scalesearch")

__all__ = ["ARCHIVE_SUFFIXES", "ARCHIVE_ALLOWED", "image_extensions", "safe_extract", "one_line", "extract_archive",
           "expand_root", "folder_root"]
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".zip")
ARCHIVE_ALLOWED = f"a complete archive ({', '.join(ARCHIVE_SUFFIXES)}) of an image folder"
# what a damaged archive raises while it is read (tarfile, gzip, bz2, lzma, zipfile; RuntimeError: encrypted
# zip member, NotImplementedError: unsupported zip compression)
_ARCHIVE_ERRORS = (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, zlib.error, lzma.LZMAError,
                   RuntimeError, NotImplementedError)
_MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"\xfd7zXZ", "xz"), (b"PK\x03\x04", "zip"))


def image_extensions() -> tuple[str, ...]:
    """The image files a folder dataset reads: torchvision's ``IMG_EXTENSIONS`` (imported here, on the driver:
    a trial's process never scans folders and does not load torchvision)."""
    from torchvision.datasets.folder import IMG_EXTENSIONS

    return IMG_EXTENSIONS


def safe_extract(archive: Path, dest: Path) -> None:
    """Extract a tar or zip archive into ``dest``, refusing any member that would land outside
    it (absolute paths, ``..``, links pointing out): a ValueError naming the member."""
    archive, dest = Path(archive), Path(dest).resolve()

    def check(name: str) -> None:
        target = (dest / name).resolve()
        if target != dest and dest not in target.parents:
            raise ValueError(f"archive {archive.name}: member {name!r} would be written outside the "
                             "extraction directory; allowed: relative paths inside the archive")

    where = f"dataset.root={str(archive)!r}"
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                for n in z.namelist():
                    check(n)
                z.extractall(dest)
            return
        try:
            tar = tarfile.open(archive)
        except tarfile.ReadError:
            with open(archive, "rb") as f:
                head = f.read(6)
            kind = next((k for m, k in _MAGIC if head.startswith(m)), None)
            if kind:  # it starts like one, and not even the first member could be read
                raise ValueError(f"{where} is a truncated or corrupt archive ({kind} data that ends early or is "
                                 f"damaged: no member could be read); allowed: {ARCHIVE_ALLOWED}") from None
            raise ValueError(f"{where} is not a readable tar or zip archive (no tar, gzip, bz2, xz or zip data could "
                             f"be read: it is empty or another format); allowed: {ARCHIVE_ALLOWED}") from None
        with tar:
            members = tar.getmembers()
            for m in members:
                check(m.name)
                if m.issym() or m.islnk():
                    check(str(Path(m.name).parent / m.linkname) if m.issym() else m.linkname)
            tar.extractall(dest, members=members, filter="data")
    except tarfile.FilterError as e:
        raise ValueError(f"{where} has a member that cannot be extracted safely ({one_line(e)}); "
                         "allowed: regular files, folders and links inside the archive") from None
    except _ARCHIVE_ERRORS as e:
        if isinstance(e, OSError) and e.errno is not None:  # a system error (disk full, permission), not the data
            raise ValueError(f"{where} could not be extracted into {dest} ({one_line(e)}); "
                             f"allowed: {ARCHIVE_ALLOWED}, extracted into a writable $SCALESEARCH_CACHE "
                             "with free space") from None
        raise ValueError(f"{where} is a truncated or corrupt archive ({type(e).__name__}: {one_line(e)}); "
                         f"allowed: {ARCHIVE_ALLOWED}") from None


def one_line(e: BaseException) -> str:
    """An exception's message on one line (its type's name if it has none)."""
    return " ".join(str(e).split()) or type(e).__name__


def extract_archive(archive: Path) -> Path:
    """Extract ``archive`` once into ``$SCALESEARCH_CACHE`` (default ``~/.cache/scalesearch``),
    keyed by its path, size and mtime; the extraction is renamed into place only when complete.
    Returns the image-folder root (the single top-level folder if the archive has one)."""
    st = archive.stat()
    key = hashlib.sha256(f"{archive.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]
    cache = Path(os.environ.get("SCALESEARCH_CACHE", Path.home() / ".cache" / "scalesearch")) / "archives"
    name = archive.name
    for suf in ARCHIVE_SUFFIXES:
        name = name.removesuffix(suf)
    dest = cache / f"{name}-{key}"
    if not dest.is_dir():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=cache))
        try:
            log.info("extracting %s into %s (once)", archive, dest)
            safe_extract(archive, tmp)
            if not any(not p.name.startswith(".") for p in tmp.iterdir()):
                raise ValueError(f"dataset.root={str(archive)!r} is an empty archive; allowed: {ARCHIVE_ALLOWED}")
            os.replace(tmp, dest)
        except OSError:
            if not dest.is_dir():  # a concurrent extraction did not win the race either
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    entries = [p for p in dest.iterdir() if not p.name.startswith(".")]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() and not _has_images(entries[0]) else dest


def _has_images(d: Path) -> bool:
    return any(p.suffix.lower() in image_extensions() for p in d.iterdir() if p.is_file())


def expand_root(value) -> Path:
    """``dataset.root`` with ``~`` / ``~user`` expanded; an unknown user or home is one line naming it."""
    try:
        return Path(value).expanduser()
    except RuntimeError:  # Path.expanduser: no such user, or no HOME and no password entry
        head = str(value).split("/", 1)[0]
        why = "$HOME is not set" if head == "~" else "no such user"
        raise ValueError(f"dataset.root={str(value)!r}: the home directory {head!r} is unknown ({why}); "
                         "allowed: an absolute or relative path, ~/<path>, or ~<existing user>/<path>") from None


def folder_root(cfg) -> Path:
    """The image-folder directory ``dataset.root`` names (an archive extracted once)."""
    if not cfg.root:
        raise ValueError("dataset.root is not set; allowed: a directory root/train/<class>/* with "
                         "root/val|test/<class>/*, or root/<class>/*, or a .tar/.tar.gz/.zip of one")
    root = expand_root(cfg.root)
    allowed = f"allowed: an image-folder directory or an archive ({', '.join(ARCHIVE_SUFFIXES)}) of one"
    if root.is_file():
        if not root.name.lower().endswith(ARCHIVE_SUFFIXES):
            raise ValueError(f"dataset.root={str(root)!r} is a file, not an image-folder directory or an archive "
                             f"({', '.join(ARCHIVE_SUFFIXES)}); allowed: a directory root/<class>/<images> or "
                             "root/train|val/<class>/<images>, or an archive of one")
        root = extract_archive(root)
    if not root.is_dir():
        raise ValueError(f"dataset.root={str(root)!r} does not exist or is not a directory; {allowed}")
    return root
