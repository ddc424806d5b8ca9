"""``Recorder``: record one model inside the user's own training loop, one framework per process.

Hooks exist only while a ``with rec.step(i):`` block runs and are removed in ``finally``,
so outside a step the model is exactly as the user left it. Layer calls are recorded by
:class:`padiff.runtime.engine.recording.SideRecorder`, the per-side event recording the online
engine uses; an error inside a recording hook is raised when the step ends, not inside the model.
Works through the framework adapter (:mod:`padiff.adapters`), which imports only the framework
of the model it is given: recording a paddle model never imports torch, and the reverse.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import sys
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from padiff.adapters.hooks import HookSet
from padiff.errors import InputError, RunFolderError
from padiff.offline import fmt
from padiff.offline.capture import Capture, StepCapture
from padiff.offline.folder_io import append_line, open_folder, write_failed, written_or_removed
from padiff.offline.reference import REFERENCES, ReferenceRecorder
from padiff.offline.shards import is_distributed
from padiff.offline.skeleton_fields import layout_field, special_field
from padiff.offline.tensor_file import write_tensors
from padiff.report.files import atomic_write


def side_of(model: Any) -> Any:
    """The adapter of ``model``'s framework (only a framework already imported is looked at)."""
    from padiff.adapters import PADDLE, TORCH

    for side in (PADDLE, TORCH):
        if side.is_model(model):
            return side
    raise InputError(f"Recorder needs a paddle.nn.Layer or a torch.nn.Module, got {type(model).__name__}.")


def detect_rank(side_name: str) -> tuple[int, int]:
    """``(rank, world_size)`` from the framework's initialised process group, else the launcher's
    environment (``RANK``/``WORLD_SIZE``, ``PADDLE_TRAINER_ID``/``PADDLE_TRAINERS_NUM``), else ``(0, 1)``."""
    if side_name == "torch":
        dist = sys.modules.get("torch.distributed")
        if dist is not None and dist.is_available() and dist.is_initialized():
            return int(dist.get_rank()), int(dist.get_world_size())
    else:
        dist = sys.modules.get("paddle.distributed")
        is_init = getattr(dist, "is_initialized", None)
        if dist is not None and callable(is_init) and is_init():
            return int(dist.get_rank()), int(dist.get_world_size())
    for r, w in (("RANK", "WORLD_SIZE"), ("PADDLE_TRAINER_ID", "PADDLE_TRAINERS_NUM")):
        if os.environ.get(r, "").isdigit():
            return int(os.environ[r]), int(os.environ.get(w, "1") or 1)
    return 0, 1


class Recorder:
    """Record a model's run, step by step, into ``out_dir/rank-<r>/`` (format: :mod:`padiff.offline.fmt`).

    ``level="full"`` keeps every tensor (safetensors); ``"stats"`` keeps only moments, min/max
    and NaN/Inf counts, a small fraction of the size. ``layers`` (paths) and ``steps`` (step
    numbers) select what is recorded; ``rank`` overrides the rank taken from the process group.
    ``graph`` (default on) exports the model once, after the first recorded step, on that step's
    inputs, so ``compare_runs(layer_map="auto")`` can match the two runs by dataflow; an export
    that fails is noted in the run folder and the recording goes on.
    Per step: every layer call's output and the gradient flowing out of it, parameter gradients
    (summed over the step's backward passes, as the framework accumulates them), parameter values
    at the end of the step, the loss given to :meth:`loss`, and a digest of the root inputs.

    ``reference="float64"`` (torch models only): a float64 copy of the model follows the user's loop
    (same inputs, same optimizer steps; :mod:`padiff.offline.reference`) and its tensors are kept
    beside every recorded entry, so ``compare_runs(..., options={"compare_mode": "calibrated"})``
    can judge paddle's errors against torch's own, as the live ``compare`` does.
    """

    def __init__(self, model: Any, out_dir: str | os.PathLike[str], level: str = "full", *,
                 layers: Iterable[str] | None = None, steps: Iterable[int] | None = None,
                 rank: int | None = None, graph: bool = True, reference: str | None = None) -> None:
        if level not in fmt.LEVELS:
            raise InputError(f"level must be one of {list(fmt.LEVELS)}, got {level!r}.")
        self.side = side_of(model)
        if reference is not None and (reference not in REFERENCES or self.side.name != "torch"):
            raise InputError(f"reference={reference!r}: the Recorder runs a float64 reference of a torch model only "
                             "(reference='float64' on the torch side; the paddle run needs none).")
        self.model = model
        self.level = level
        self.layers = None if layers is None else set(layers)
        self.steps = None if steps is None else {int(s) for s in steps}
        r, world = detect_rank(self.side.name)
        self.rank = r if rank is None else int(rank)
        self.root = os.path.join(os.fspath(out_dir), fmt.rank_dir(self.rank))
        self._lock = open_folder(self.root)  # refuses a folder another Recorder holds or that holds a recording
        try:
            os.makedirs(os.path.join(self.root, fmt.STEPS_DIR), exist_ok=True)
            self._capture = Capture(self.side, model, self.layers)
            self._mesh = is_distributed(self.side.name, [e.tensor for es in self.side.owned_state(model).values()
                                                         for e in es])
            self._reference = (ReferenceRecorder(model, self._capture.selected, world)
                               if reference is not None else None)
            self._write_header(world)
        except BaseException:
            self._lock.release()
            raise
        # a Recorder dropped (or the interpreter leaving) between steps closes its run; inside a step the
        # lock stays, so a reader says which step is missing
        self._finalizer = weakref.finalize(self, self._lock.release_if_between_steps)
        self._done: set[int] = set()
        self._closed = False
        self._graph_pending = graph
        self._cur: StepCapture | None = None

    # --- public ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def step(self, i: int) -> Iterator[None]:
        """Record everything the block does to the model as step ``i`` (written when the block ends)."""
        if self._closed:
            raise InputError("this Recorder is closed; create a new one for a new run.")
        i = int(i)
        if i in self._done:
            raise RunFolderError(f"step {i} is already recorded in {self.root}; step numbers must not repeat.")
        ref = self._following(i)
        if self.steps is not None and i not in self.steps:
            ref_hooks = HookSet()
            if ref is not None and ref.twin is not None:  # the float64 copy keeps following the training
                ref.start(recording=False)
                ref.install(ref_hooks)
            handles = self._capture.install_conventions()  # conventions still accumulate
            try:
                yield
                if ref is not None and ref.twin is not None:
                    ref.finish()
                    ref.errors.raise_pending()
            finally:
                ref_hooks.remove_all()
                for h in handles:
                    h.remove()
            return
        state = StepCapture(i, keep_tensors=self.level == "full")
        self._cur = state
        hooks = HookSet()
        self._lock.set_step(i)  # left in the lock if the process dies inside this step
        try:
            if ref is not None:  # before any hook of padiff's is on the model: the copy must not hold them
                ref.start(recording=True, keep_tensors=self.level == "full")
            hooks = self._capture.install(state)
            if ref is not None:
                ref.install(hooks)
            yield
            state.errors.raise_pending()  # a recording hook that failed is reported here, not inside the model
            if ref is not None:
                ref.finish()
                ref.errors.raise_pending()
            self._finish(state)
            self._lock.set_step(None)
        finally:
            hooks.remove_all()
            self._cur = None
        if self._graph_pending and state.root_call is not None:
            self._graph_pending = False
            self._write_graph(*state.root_call)

    def loss(self, loss: Any, fn: Callable[[Any], Any] | None = None) -> None:
        """Record the loss of the current micro-step (call inside ``step``).

        ``fn`` (with ``reference="float64"``): the loss as a function of the model's output, e.g.
        ``lambda out: criterion(out, y)``; the float64 copy then computes its own loss and its backward
        starts from it, so the loss is calibrated too. Without it the copy's backward starts from torch's
        gradient at the model output and the loss is judged by the ``mean`` verdict, saying so.
        """
        st = self._cur
        if st is None:
            if self._reference is not None and self._reference.twin is not None:
                self._reference.loss(fn)  # a step not recorded: the copy still needs its loss
                return
            raise InputError("rec.loss(...) must be called inside a `with rec.step(i):` block.")
        st.add("loss", "", "", 0, "loss", max(st.micro, 0), self.side.to_numpy(loss), self.side.dtype_name(loss))
        if self._reference is not None:
            self._reference.loss(fn)

    def close(self) -> None:
        """Finish the run: every complete step is already on disk; this forbids new steps and removes the
        folder's lock, so readers know the run is complete (a run never closed is reported as unfinished)."""
        self._closed = True
        if self._reference is not None:
            self._reference.close()
        self._lock.release()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals --------------------------------------------------------------------------
    def _following(self, i: int) -> ReferenceRecorder | None:
        """The float64 reference while it is needed: from the first recorded step to the last selected one."""
        ref = self._reference
        if ref is not None and self.steps is not None and self.steps and i > max(self.steps) and ref.twin is not None:
            ref.close()  # no recorded step is left: stop paying for the copy
        return ref

    def _write_header(self, world: int) -> None:
        owned = self.side.owned_state(self.model)
        layers = []
        for path, lay in self.side.named_layers(self.model):
            state = [{"name": e.name, "shape": list(self.side.shape(e.tensor)),
                      "dtype": self.side.dtype_name(e.tensor), "trainable": bool(e.trainable),
                      "buffer": bool(e.is_buffer), **layout_field(self.side, lay, e.name)}
                     for e in owned.get(path, [])]
            entry = {"path": path, "cls": type(lay).__name__, "leaf": not self.side.children(lay),
                     "depth": 0 if not path else path.count(".") + 1, "state": state,
                     **special_field(self.side, lay)}
            flags = self._capture.layer_flags(lay)
            if flags:
                entry["conventions"] = flags
            layers.append(entry)
        skeleton = {"root_class": type(self.model).__name__, "layers": layers}
        atomic_write(os.path.join(self.root, fmt.SKELETON_FILE), json.dumps(skeleton, indent=1))
        run = {"format": fmt.FORMAT, "version": fmt.VERSION, "framework": self.side.name, "rank": self.rank,
               "world_size": world, "level": self.level,
               "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        if self._mesh is not None:  # tensor-parallel: compare_runs merges the shards of these ranks
            run["mesh"] = self._mesh
        if self._reference is not None:  # compare_mode="calibrated" can use this run
            run["reference"] = "float64"
        atomic_write(os.path.join(self.root, fmt.RUN_FILE), json.dumps(run, indent=1))

    def _write_graph(self, args: tuple, kwargs: dict[str, Any]) -> None:
        """Export the model on its first recorded call's inputs; store the graph, or why there is none."""
        from padiff.offline.graph_io import GRAPH_VERSION, call_kwargs, export_graph

        try:
            if self._mesh is not None:
                raise TypeError("the model's parameters are tensor-parallel shards, which padiff does not export")
            inputs = call_kwargs(self.model, args, kwargs)
        except TypeError as exc:
            why = f"not exported: {exc}"
            data: dict[str, Any] = {"version": GRAPH_VERSION, "error": why}
        else:
            data = export_graph(self.side.name, self.model, inputs)
        atomic_write(os.path.join(self.root, fmt.GRAPH_FILE), json.dumps(data))

    def _finish(self, st: StepCapture) -> None:
        """Write the step: its tensor file (under a temporary name, then renamed), then its index line.

        A write that fails (a full disk) leaves neither: the temporary file is removed, an index line
        cut short is truncated away, so every earlier step stays readable and the step can be retried.
        """
        self._capture.finish(st)
        refs = self._reference.attach(st.entries) if self._reference is not None else {}
        rel, digest, dest, ref_dest = None, None, None, None
        line = {"step": st.step, "micro_steps": max(st.micro + 1, 1), "tensors": rel, "sha256": digest,
                "digests": st.digests, "call_order": st.call_order,
                "calls": [[path, call] for _, path, call in sorted(st.opened)], "entries": st.entries}
        try:
            if self.level == "full" and refs:
                ref_rel = fmt.reference_file(st.step)
                ref_dest = os.path.join(self.root, ref_rel)
                if os.path.exists(ref_dest):
                    raise RunFolderError(f"{ref_dest} exists already; padiff never overwrites a recorded step.")
                with written_or_removed(ref_dest + ".partial") as tmp:
                    ref_digest = write_tensors(tmp, refs, {k: "float64" for k in refs})
                    os.replace(tmp, ref_dest)
                line.update(reference_tensors=ref_rel, reference_sha256=ref_digest)
            if self.level == "full" and st.tensors:
                rel = fmt.step_file(st.step)
                dest = os.path.join(self.root, rel)
                if os.path.exists(dest):
                    raise RunFolderError(f"{dest} exists already; padiff never overwrites a recorded step.")
                with written_or_removed(dest + ".partial") as tmp:
                    digest = write_tensors(tmp, st.tensors, st.dtypes)
                    os.replace(tmp, dest)
            line.update(tensors=rel, sha256=digest)
            line["check"] = fmt.line_check(line)
            append_line(os.path.join(self.root, fmt.INDEX_FILE), (json.dumps(line, allow_nan=True) + "\n").encode())
        except OSError as exc:
            for written in (dest, ref_dest):
                if written is not None and os.path.exists(written):
                    os.unlink(written)  # no index line names it: the step was not recorded
            raise write_failed(exc, self.root, st, sorted(self._done)) from exc
        self._done.add(st.step)
