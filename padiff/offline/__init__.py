"""Record in the user's own training loop, compare offline (SPEC §7).

- :mod:`~padiff.offline.fmt`: the versioned run-folder format (documented there).
- :mod:`~padiff.offline.recorder`: ``Recorder``, one framework per process.
- :mod:`~padiff.offline.reader`: reading and checking run folders (no framework).
- :mod:`~padiff.offline.compare_runs`: two runs in, one ``DiffReport`` out (no framework).
- :mod:`~padiff.offline.weights_io`: ``export_weights`` / ``import_weights`` across processes.
"""
