"""Read a run folder back, checking it: framework-free (numpy and safetensors only).

Every problem a user can act on is a :class:`~padiff.errors.RunFolderError` naming the file:
a missing folder or header, another format version, a corrupt index line, a tensor file whose
SHA-256 differs from the one recorded. A last index line cut short (the run was killed while
writing it) is dropped with a warning: every step before it stays readable.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from padiff.errors import RunFolderError
from padiff.offline import fmt
from padiff.offline.run_lock import read_lock, unfinished_warning
from padiff.offline.tensor_file import map_tensors


@dataclass
class RankRun:
    """One rank's recording: header, skeleton, complete steps by number."""

    root: str
    meta: dict[str, Any]
    skeleton: dict[str, Any]
    steps: dict[int, dict[str, Any]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def framework(self) -> str:
        """``"paddle"`` or ``"torch"``."""
        return str(self.meta["framework"])

    def tensors(self, step: int) -> dict[str, np.ndarray]:
        """The full-level tensors of one step (empty at level ``stats``), after checking the file's digest."""
        return self._step_file(step, "tensors", "sha256")

    @property
    def has_reference(self) -> bool:
        """Whether this is a torch run recorded with ``reference="float64"``."""
        return self.meta.get("reference") == "float64"

    def reference_tensors(self, step: int) -> dict[str, np.ndarray]:
        """The float64 reference's tensors of one step by entry key (empty at level ``stats`` or without one)."""
        return self._step_file(step, "reference_tensors", "reference_sha256")

    def _step_file(self, step: int, field_name: str, digest_name: str) -> dict[str, np.ndarray]:
        line = self.steps[step]
        rel = line.get(field_name)
        if not rel:
            return {}
        path = os.path.normpath(os.path.join(self.root, rel))
        if os.path.isabs(rel) or not path.startswith(os.path.normpath(self.root) + os.sep):
            raise RunFolderError(f"{os.path.join(self.root, fmt.INDEX_FILE)}: step {step} names a tensor file "
                                 f"outside the run folder ({rel!r}); the index was tampered with.")
        if not os.path.isfile(path):
            raise RunFolderError(f"{path} is missing (step {step} of {self.root}); the run folder is incomplete.")
        data = _mapped(path)
        if hashlib.sha256(data).hexdigest() != line.get(digest_name):
            raise RunFolderError(f"{path} does not match the SHA-256 recorded for step {step}: it was changed "
                                 "after recording. Re-record the run.")
        return map_tensors(data, path)


def _mapped(path: str) -> Any:
    """The file's bytes, memory-mapped read-only (its pages are read as they are used, and not copied).

    An empty file cannot be mapped: its (empty) bytes then. The map stays open as long as an array
    made from it lives; the caller never writes into it.
    """
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return b""
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


def _read_json(path: str) -> dict[str, Any]:
    if not os.path.isfile(path):
        raise RunFolderError(f"{path} is missing: this is not a complete padiff run folder "
                             "(record one with padiff.Recorder).")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise RunFolderError(f"{path} is not valid JSON ({exc}); the run folder is damaged.") from None
    if not isinstance(data, dict):
        raise RunFolderError(f"{path} does not hold a JSON object; the run folder is damaged.")
    return data


def read_rank(root: str) -> RankRun:
    """Read and check one ``rank-<r>`` folder."""
    meta = _read_json(os.path.join(root, fmt.RUN_FILE))
    run_file = os.path.join(root, fmt.RUN_FILE)
    if meta.get("format") != fmt.FORMAT:
        raise RunFolderError(f"{run_file} is not a padiff run header (format {meta.get('format')!r}).")
    if meta.get("version") != fmt.VERSION:
        raise RunFolderError(f"{run_file} is format version {meta.get('version')!r}; this padiff reads version "
                             f"{fmt.VERSION}. Use the padiff version that recorded it, or re-record.")
    if meta.get("framework") not in ("paddle", "torch"):
        raise RunFolderError(f"{run_file}: unknown framework {meta.get('framework')!r}.")
    skeleton = _read_json(os.path.join(root, fmt.SKELETON_FILE))
    run = RankRun(root, meta, skeleton)
    index = os.path.join(root, fmt.INDEX_FILE)
    if not os.path.isfile(index):
        run.warnings.append(f"{index} is missing: the run recorded no complete step.")
        _note_unfinished(run)
        return run
    with open(index, "rb") as f:
        raw = f.read()
    lines = raw.split(b"\n")
    for n, text in enumerate(lines):
        if not text.strip():
            continue
        last = n == len(lines) - 1  # no newline after it: cut short while being written
        try:
            line = json.loads(text)
            ok = isinstance(line, dict) and isinstance(line.get("step"), int) and isinstance(line.get("entries"), list)
        except ValueError:
            ok = False
        if not ok or last:
            if last:
                run.warnings.append(f"{index}: the last line is incomplete (the run stopped while writing it); "
                                    "the steps before it are used.")
                break
            raise RunFolderError(f"{index}: line {n + 1} is not a valid step record; the index was damaged "
                                 "or edited.")
        if line.get("check") != fmt.line_check(line):
            raise RunFolderError(f"{index}: line {n + 1} (step {line['step']}) does not match the SHA-256 it was "
                                 "recorded with: the index was edited after recording. Re-record the run.")
        if line["step"] in run.steps:
            raise RunFolderError(f"{index}: step {line['step']} is recorded twice (line {n + 1}).")
        run.steps[line["step"]] = line
    _note_unfinished(run)
    return run


def _note_unfinished(run: RankRun) -> None:
    """A folder whose recording lock is still there was not closed: say whether it is still being
    written or stopped (and in which step); only its complete steps are read either way."""
    info = read_lock(run.root)
    if info is not None:
        run.warnings.append(unfinished_warning(info, run.root, sorted(run.steps)))


_RANK = re.compile(r"^rank-(\d+)$")


def read_run(path: str | os.PathLike[str]) -> dict[int, RankRun]:
    """``{rank: RankRun}`` of a run folder (a folder of ``rank-<r>/`` folders, or one rank folder)."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise RunFolderError(f"{path} is not a folder: give the out_dir a padiff.Recorder wrote.")
    if os.path.isfile(os.path.join(path, fmt.RUN_FILE)):
        one = read_rank(path)
        return {int(one.meta.get("rank", 0)): one}
    ranks = {}
    for name in sorted(os.listdir(path)):
        m = _RANK.match(name)
        if m and os.path.isdir(os.path.join(path, name)):
            ranks[int(m.group(1))] = read_rank(os.path.join(path, name))
    if not ranks:
        raise RunFolderError(f"{path} holds no rank-<r>/ recording folder (nor a {fmt.RUN_FILE}); "
                             "give the out_dir a padiff.Recorder wrote.")
    return ranks
