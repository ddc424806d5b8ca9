"""Record in the user's own training loop, compare offline (README "Your own training loop, several processes").

- :mod:`~padiff.offline.fmt`: the versioned run-folder format (documented there).
- :mod:`~padiff.offline.recorder`: ``Recorder``, one framework per process; owns the run folder.
- :mod:`~padiff.offline.run_lock`: the lock a recording holds on its folder (one recorder per folder; a
  reader says whether an unfinished run is still being written or stopped, and in which step).
- :mod:`~padiff.offline.folder_io`: writing into a rank folder: taking it, appending index lines, a full disk.
- :mod:`~padiff.offline.capture`: the per-side event capture (hooks → entries), conventions observed.
- :mod:`~padiff.offline.tensor_file`: safetensors files, each tensor in its own dtype (bfloat16 too).
- :mod:`~padiff.offline.graph_io`: each run's exported graph, for ``layer_map="auto"`` by dataflow.
- :mod:`~padiff.offline.shards`: tensor-parallel shards, recorded with their placement and merged.
- :mod:`~padiff.offline.reader`: reading and checking run folders (no framework).
- :mod:`~padiff.offline.compare_runs`: two runs in, one ``DiffReport`` out (no framework).
- :mod:`~padiff.offline.weights_io`: ``export_weights`` / ``import_weights`` across processes.
"""
