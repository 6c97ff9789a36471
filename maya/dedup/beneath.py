"""File operations inside a folder Maya writes to (``--move-to``), that never follow a symbolic link in it.

The folder itself is the one the user named (resolved once, with :func:`os.path.realpath`); below it
every component is opened with ``O_NOFOLLOW | O_DIRECTORY`` relative to its parent's descriptor
(``dir_fd``), so a link planted inside the folder (``dups/home -> /tmp/elsewhere``) is refused
(``ELOOP`` / ``ENOTDIR``), never followed, and nothing lands outside the folder whatever its content.

Folders Maya creates there mirror folders of the scanned tree: each gets the permission bits of the
folder it mirrors (never wider: a photo private because its folder was 0700 stays private), plus
owner ``rwx`` so Maya can put the file in and take it out again. Files are moved with
``link``/``unlink`` where the file system allows it (never replaces an existing name), else
``rename`` after checking the name is free, and across file systems by copying through a private
temporary file whose size is checked before the source is removed.
"""

from __future__ import annotations

import errno
import os
import stat

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_COPY_CHUNK = 1 << 20


class UnsafeDestinationError(OSError):
    """A component below the destination folder is a symbolic link or not a folder."""


def parts_below(path: str) -> list[str]:
    """The components of the absolute ``path``, as they are mirrored under a folder (drive letter kept)."""
    drive, rest = os.path.splitdrive(os.path.abspath(path))
    parts = [drive.replace(":", "")] if drive else []
    return parts + [p for p in rest.replace("\\", "/").split("/") if p]


def open_root(folder: str, *, create: bool) -> tuple[int, str, bool]:
    """``(fd, resolved path, created)`` of the destination folder the user named.

    A dangling symbolic link, or a file, is a clear :class:`OSError`; ``create`` makes a missing folder
    (mode 0700, its parents as ``os.makedirs`` does)."""
    real = os.path.realpath(folder)
    created = False
    if not os.path.isdir(real):
        if os.path.islink(folder) and not os.path.lexists(real):
            raise UnsafeDestinationError(errno.ENOENT, f"{folder} is a symbolic link to {os.readlink(folder)}, "
                                                       "which does not exist: create that folder or name another")
        if os.path.lexists(real):
            raise UnsafeDestinationError(errno.ENOTDIR, f"{folder} is not a folder")
        if not create:
            raise FileNotFoundError(errno.ENOENT, "no such folder", folder)
        os.makedirs(real, mode=0o700)
        created = True
    return os.open(real, _DIR_FLAGS), real, created


def open_dirs(root_fd: int, root: str, parts: list[str], *, mirror: bool, created: list[str] | None = None) -> int:
    """A descriptor of ``root/parts...``, walked one component at a time, links never followed.

    ``mirror``: create missing components, each with the mode of ``/parts[:i+1]`` (the folder it
    mirrors; 0700 when that is gone), recording their paths in ``created``. Without ``mirror`` a
    missing component is :class:`FileNotFoundError`. The caller closes the descriptor."""
    fd = os.dup(root_fd)
    try:
        for i, name in enumerate(parts):
            try:
                nfd = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not mirror:
                    raise
                made = True
                try:
                    os.mkdir(name, 0o700, dir_fd=fd)
                except FileExistsError:
                    made = False  # made by another run meanwhile: opened (and checked) below
                nfd = os.open(name, _DIR_FLAGS, dir_fd=fd)
                if made:
                    os.fchmod(nfd, _mirrored_mode(parts[: i + 1]))
                    if created is not None:
                        created.append(os.path.join(root, *parts[: i + 1]))
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
                    raise UnsafeDestinationError(
                        errno.ELOOP, f"{os.path.join(root, *parts[: i + 1])} is a symbolic link or not a folder "
                                     "(never followed inside the destination)") from None
                raise
            os.close(fd)
            fd = nfd
        return fd
    except BaseException:
        os.close(fd)
        raise


def _mirrored_mode(parts: list[str]) -> int:
    try:
        st = os.stat(os.sep + os.path.join(*parts))
    except (OSError, ValueError):
        return 0o700
    return (stat.S_IMODE(st.st_mode) & 0o777) | 0o700


def entry_stat(dir_fd: int, name: str) -> os.stat_result | None:
    """lstat of ``name`` in the folder ``dir_fd``, or None when nothing is there."""
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def sha256_entry(dir_fd: int, name: str) -> tuple[str, int]:
    """``(sha256 hex, size)`` of the regular file ``name`` in ``dir_fd``, opened without following a link."""
    import hashlib

    fd = os.open(name, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0), dir_fd=dir_fd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        digest, size = hashlib.sha256(), 0
        while chunk := os.read(fd, _COPY_CHUNK):
            digest.update(chunk)
            size += len(chunk)
        return digest.hexdigest(), size
    finally:
        os.close(fd)


def move_entry(src_fd: int, src_name: str, dst_fd: int, dst_name: str) -> None:
    """Move ``src_name`` (in folder ``src_fd``) to ``dst_name`` (in ``dst_fd``); never replaces anything."""
    if entry_stat(dst_fd, dst_name) is not None:
        raise FileExistsError(errno.EEXIST, "destination exists", dst_name)
    try:
        os.link(src_name, dst_name, src_dir_fd=src_fd, dst_dir_fd=dst_fd, follow_symlinks=False)
    except OSError as e:
        if e.errno == errno.EXDEV:
            return _copy_across(src_fd, src_name, dst_fd, dst_name)
        if e.errno == errno.EEXIST:
            raise
        # no hard links here (FAT, some network mounts, protected_hardlinks): rename, name checked free above
        os.rename(src_name, dst_name, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
        return
    try:
        os.unlink(src_name, dir_fd=src_fd)
    except OSError:
        os.unlink(dst_name, dir_fd=dst_fd)
        raise


def _copy_across(src_fd: int, src_name: str, dst_fd: int, dst_name: str) -> None:
    tmp = f".maya-tmp-{os.getpid()}-{dst_name}"[:200]
    sfd = os.open(src_name, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0), dir_fd=src_fd)
    try:
        st = os.fstat(sfd)
        tfd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600, dir_fd=dst_fd)
        try:
            copied = 0
            while chunk := os.read(sfd, _COPY_CHUNK):
                os.write(tfd, chunk)  # regular files: a short write raises, never silently truncates
                copied += len(chunk)
            if copied != st.st_size:
                raise OSError(errno.EIO, "copy is incomplete", dst_name)
            os.fchmod(tfd, stat.S_IMODE(st.st_mode))
            os.utime(tfd, ns=(st.st_atime_ns, st.st_mtime_ns))
            os.fsync(tfd)
        finally:
            os.close(tfd)
        os.rename(tmp, dst_name, src_dir_fd=dst_fd, dst_dir_fd=dst_fd)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=dst_fd)
        except OSError:
            pass
        raise
    finally:
        os.close(sfd)
    os.unlink(src_name, dir_fd=src_fd)


def remove_empty_dirs(root_fd: int, root: str, created: list[str]) -> list[str]:
    """Remove the folders of ``created`` (absolute, below ``root``) that are empty, deepest first; returns
    those left because something is still in them."""
    left = []
    for path in sorted(set(created), key=lambda p: -p.count(os.sep)):
        rel = os.path.relpath(path, root)
        if rel.startswith(os.pardir) or os.path.isabs(rel) or rel == os.curdir:
            continue
        parts = rel.split(os.sep)
        try:
            fd = open_dirs(root_fd, root, parts[:-1], mirror=False)
        except OSError:
            continue
        try:
            os.rmdir(parts[-1], dir_fd=fd)
        except FileNotFoundError:
            pass
        except OSError as e:
            if e.errno in (errno.ENOTEMPTY, errno.EEXIST):
                left.append(path)
        finally:
            os.close(fd)
    return left
