"""The structural aligner: export both models to ONNX, build graphs, match, propose a LayerMap.

Modules, one job each (only the ``export_*`` modules import a framework):

- ``export_paddle``: ``paddle.jit.save`` here + ``paddle2onnx`` in a child process, with
  layer-path stamps for attribution; ``export_paddle_child`` is that child's entry point.
- ``export_torch``: TorchScript ONNX exporter into memory (module scopes in node names).
- ``build``: ONNX → ``networkx.DiGraph`` of ops attributed to layer paths and calls.
- ``canonical``: contract exporter noise, normalise op kinds and weight layouts.
- ``units``: layer calls (units) and the glue between them, with depths and signatures.
- ``align``: Needleman–Wunsch over the two unit orders, ties refined by neighbours.
- ``match``: unit pairs → layer pairs with confidence, evidence and unpaired reasons
  (``units``, ``align``, ``match``, ``canonical`` and ``tree`` are pure Python).
- ``fused``: one layer against several among what the one-to-one match left; ``blocks``:
  enclosing block pairs for the rest, and matching again around blocks the pairs crossed.
- ``tree``: structure-only pairing over the module trees (no input, or export failed).
- ``confirm``: settle structural ties by comparing outputs with trial weight copies.
- ``suggest``: ``suggest_layer_map`` — runs the above and fills a ``LayerMap``.
"""
