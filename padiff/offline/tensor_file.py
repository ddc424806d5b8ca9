"""Tensor files of a run folder: safetensors, each tensor in the dtype the model computed in.

numpy has no bfloat16, so ``safetensors.numpy`` can neither write nor read one. A bfloat16
tensor reaches the recorder widened to float32 by the adapter (exact: every bfloat16 is a
float32 whose low 16 bits are zero); here its high 16 bits are written as the raw bytes of a
``BF16`` safetensors tensor, and reading widens them back to float32, bit for bit, for the
comparison. float16 is stored as float16. Everything else is stored as it is. Nothing is
unpickled: the file is a JSON header and raw little-endian bytes.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from padiff.errors import RunFolderError

#: safetensors dtype codes of the numpy dtypes a run folder holds
_CODES = {"float64": "F64", "float32": "F32", "float16": "F16", "int64": "I64", "int32": "I32", "int16": "I16",
          "int8": "I8", "uint8": "U8", "bool": "BOOL", "uint16": "U16", "uint32": "U32", "uint64": "U64"}
_NUMPY = {v: k for k, v in _CODES.items()}


def to_stored(arr: np.ndarray, dtype: str, copy: bool = True) -> np.ndarray:
    """``arr`` (as the adapter gave it) in the form kept on disk for a tensor of framework dtype ``dtype``.

    A bfloat16 tensor comes back as its 16-bit patterns (``uint16``); write it with
    :func:`write_tensors` passing ``dtype``; float16 as float16; others as a contiguous copy, or
    ``arr`` itself when ``copy`` is False and it is contiguous already (the caller owns it, or
    writes it before its tensor can change).
    """
    if dtype == "bfloat16":
        bits = np.ascontiguousarray(arr, dtype=np.float32).view(np.uint32)
        return (bits >> 16).astype(np.uint16)
    if dtype == "float16":
        return np.ascontiguousarray(arr, dtype=np.float16)
    return np.array(arr, copy=True, order="C") if copy else np.ascontiguousarray(arr)


def write_tensors(path: str, tensors: Mapping[str, np.ndarray], dtypes: Mapping[str, str],
                  metadata: Mapping[str, str] | None = None) -> str:
    """Write ``tensors`` as a safetensors file at ``path`` and return the file's SHA-256.

    A key whose ``dtypes`` entry is ``bfloat16`` holds bit patterns (see :func:`to_stored`) and is
    written as ``BF16``. The header and each tensor's bytes go straight to the file (no copy of
    the whole file in memory), hashed on the way.
    """
    import hashlib

    arrays = {k: _little(np.ascontiguousarray(v)) for k, v in tensors.items()}
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    start = 0
    for k, a in arrays.items():
        code = "BF16" if dtypes.get(k) == "bfloat16" else _CODES.get(a.dtype.name)
        if code is None:
            raise TypeError(f"tensor {k!r} has dtype {a.dtype}, which a run folder does not store")
        header[k] = {"dtype": code, "shape": [int(x) for x in a.shape], "data_offsets": [start, start + a.nbytes]}
        start += a.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        for chunk in (len(text).to_bytes(8, "little"), text, *(memoryview(a).cast("B") for a in arrays.values()
                                                               if a.nbytes)):
            digest.update(chunk)
            f.write(chunk)
    return digest.hexdigest()


def _little(a: np.ndarray) -> np.ndarray:
    return a.byteswap().view(a.dtype.newbyteorder("<")) if a.dtype.byteorder == ">" else a


def load_tensors(data: bytes, where: str) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file's bytes; ``BF16`` widened to float32 (exactly). ``where`` names
    the file in errors. The arrays are writable copies (see :func:`map_tensors` for read-only views)."""
    import safetensors

    try:
        items = safetensors.deserialize(data)
    except Exception as exc:  # noqa: BLE001 - the library's error type varies between versions
        raise RunFolderError(f"{where} is not a readable safetensors file ({exc}); re-record the run.") from None
    out: dict[str, np.ndarray] = {}
    for name, t in items:
        code, shape, raw = str(t["dtype"]).upper(), [int(s) for s in t["shape"]], t["data"]
        if code == "BF16":
            out[name] = widen_bf16(np.frombuffer(raw, dtype="<u2")).reshape(shape)
        elif code in _NUMPY:
            out[name] = np.frombuffer(raw, dtype=np.dtype(_NUMPY[code]).newbyteorder("<")).reshape(shape).copy()
        else:
            raise RunFolderError(f"{where}: tensor {name!r} has dtype {code}, which padiff does not read.")
    return out


def widen_bf16(bits: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns (``uint16``) as the float32 values they stand for (exact)."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


def map_tensors(buf: Any, where: str) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file held in ``buf`` (an ``mmap`` or bytes) as read-only views of it.

    No tensor is copied (the file's pages are read when a comparison reads them, and can be
    dropped by the kernel again); ``BF16`` is the exception, widened to float32 (numpy has no
    bfloat16). The header is checked as the safetensors library checks it: known dtypes,
    shapes that match the byte ranges, ranges inside the data and not overlapping.
    """
    size = len(buf)
    n = int.from_bytes(bytes(buf[:8]), "little") if size >= 8 else -1
    try:
        header = json.loads(bytes(buf[8:8 + n])) if 0 < n <= size - 8 else None
    except ValueError:
        header = None
    if not isinstance(header, dict):
        raise RunFolderError(f"{where} is not a readable safetensors file (no header); re-record the run.")
    start, end = 8 + n, size
    out: dict[str, np.ndarray] = {}
    spans = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            code = str(info["dtype"]).upper()
            shape = [int(x) for x in info["shape"]]
            lo, hi = (int(x) for x in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise RunFolderError(f"{where}: the header entry of {name!r} is malformed; re-record the run.") from None
        if code != "BF16" and code not in _NUMPY:
            raise RunFolderError(f"{where}: tensor {name!r} has dtype {code}, which padiff does not read.")
        dt = np.dtype("<u2") if code == "BF16" else np.dtype(_NUMPY[code]).newbyteorder("<")
        count = int(np.prod(shape)) if shape else 1
        if min(shape, default=0) < 0 or lo < 0 or hi - lo != count * dt.itemsize or start + hi > end:
            raise RunFolderError(f"{where}: tensor {name!r} does not fit its byte range; the file is damaged.")
        spans.append((lo, hi, name))
        arr = np.frombuffer(buf, dtype=dt, count=count, offset=start + lo).reshape(shape)
        out[name] = widen_bf16(arr) if code == "BF16" else arr
    spans.sort()
    for (_, prev_hi, prev), (lo, _, name) in itertools.pairwise(spans):
        if lo < prev_hi:
            raise RunFolderError(f"{where}: tensors {prev!r} and {name!r} overlap; the file is damaged.")
    return out


def _header(data: bytes) -> dict[str, Any]:
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n]) if 0 < n <= len(data) - 8 else None
    if not isinstance(header, dict):
        raise ValueError("no safetensors header")
    return header


def stored_dtypes(data: bytes) -> dict[str, str]:
    """``{name: safetensors dtype code}`` from a file's header (what is on disk, e.g. ``BF16``)."""
    return {k: str(v["dtype"]) for k, v in _header(data).items() if k != "__metadata__"}


def read_metadata(data: bytes) -> dict[str, str]:
    """The text metadata of a safetensors file's header (``{}`` when it has none)."""
    meta = _header(data).get("__metadata__") or {}
    return {str(k): str(v) for k, v in meta.items()}
