"""Files: writing them safely (atomically, never over an existing file by
accident, with the permissions a plain ``open`` would give), and the model file
format of ``SPIVAE.save`` and ``SPIVAE.load``, its one owner.

A model file (format 2) is a magic line, a one-line JSON header with the
format, the size and the SHA-256 of the content, then the content: a
``torch.save`` of plain Python values and tensors, which a weights-only
``torch.load`` reads back without running code. Format 1 files (a bare
``torch.save``, written before the Gaussian decoder existed) still load, as
the WaveNet models they were.
"""

import contextlib
import hashlib
import io
import json
import os
import secrets
import stat

import numpy as np
import torch

MAGIC = b"SKSPIVAE MODEL\n"
FORMAT_VERSION = 2


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


def write_model_file(path, payload, *, overwrite=False):
    """Write ``payload`` (a dict) to ``path`` in the current file format,
    atomically; numpy values in it are stored as plain Python values."""
    buffer = io.BytesIO()
    torch.save(_plain(payload), buffer)
    content = buffer.getvalue()
    header = json.dumps({"format": FORMAT_VERSION, "bytes": len(content),
                         "sha256": hashlib.sha256(content).hexdigest()})
    atomic_write(path, lambda f: f.write(MAGIC + header.encode() + b"\n" + content),
                 overwrite=overwrite)


def read_model_file(path):
    """The payload of a model file, checked; a clear ValueError naming the
    file and what is wrong with it otherwise."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such file: {path}")
    with open(path, "rb") as f:
        data = f.read()
    if not data:
        raise ValueError(f"{path} is empty: not a model file.")
    if data.startswith(b"PK\x03\x04"):  # format 1: a bare torch.save zip
        return _read_format_1(path, data)
    if not data.startswith(MAGIC):
        raise ValueError(f"{path} is not a model written by SPIVAE.save (it starts "
                         f"with {data[:16]!r}).")
    line, sep, content = data[len(MAGIC):].partition(b"\n")
    try:
        header = json.loads(line)
        version, size, digest = header["format"], header["bytes"], header["sha256"]
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"{path} has a damaged header: not a readable model "
                         "file.") from None
    if version != FORMAT_VERSION:
        raise ValueError(f"{path} was written by a newer version of skspivae (file "
                         f"format {version}; this version reads formats 1 and "
                         f"{FORMAT_VERSION}): upgrade skspivae to read it.")
    if not sep or len(content) != size:
        raise ValueError(f"{path} is truncated: {len(content)} of its {size} bytes of "
                         "content are there.")
    if hashlib.sha256(content).hexdigest() != digest:
        raise ValueError(f"{path} is damaged: its content does not match its "
                         "checksum (SHA-256).")
    return torch.load(io.BytesIO(content), map_location="cpu", weights_only=True)


def _read_format_1(path, data):
    """A file of format 1 (no checksum; the WaveNet was the only decoder)."""
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception:  # torch raises many kinds on a damaged zip
        raise ValueError(f"{path} is not a model written by SPIVAE.save, or is "
                         "damaged (a zip file that torch cannot read).") from None
    if not isinstance(payload, dict) or payload.get("format") != 1:
        raise ValueError(f"{path} is not a model written by SPIVAE.save.")
    payload["params"].setdefault("decoder", "wavenet")
    payload["params"].setdefault("encoder_scaling", "global")
    return payload


def _plain(obj):
    """Plain Python values (what a weights-only ``torch.load`` reads back):
    numpy scalars and arrays become Python numbers and lists, a torch.device
    its name; tensors stay tensors."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v) for v in obj)
    if isinstance(obj, np.ndarray):
        return [_plain(v) for v in obj.tolist()]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, torch.device):
        return str(obj)
    return obj
