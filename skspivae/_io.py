"""Writing files safely: atomically, never over an existing file by accident,
with the permissions a plain ``open`` would give."""

import contextlib
import os
import secrets
import stat


def atomic_write(path, write, *, overwrite=False, hint="pass overwrite=True"):
    """Write ``path`` through ``write(file)`` so that it is never half-written.

    The content goes to a new file beside ``path``, which then replaces it in
    one step (``os.replace``): an interrupted or failed write leaves the old
    file, or none, and no temporary file behind. The new file gets the
    permissions ``open(path, "wb")`` would give it: those of the file it
    replaces, else ``0o666`` less the process's umask (applied by the
    system when the file is created).

    Parameters
    ----------
    path : str or path-like
    write : callable
        Called with a binary file object open for writing.
    overwrite : bool, default=False
        Replace an existing ``path``; otherwise it raises ``FileExistsError``.
    hint : str, default="pass overwrite=True"
        How to allow it, for the message of that error.
    """
    path = os.fspath(path)
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; {hint} to replace it.")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"folder {folder} does not exist (for {path}).")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = os.path.join(folder, f".skspivae-{secrets.token_hex(8)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:  # pragma: no cover - a 64-bit name collision
            continue
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
