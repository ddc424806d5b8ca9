"""The framework-free comparison core, shared by the live engine and the offline reader.

Host arrays in, :class:`~padiff.report.records.Stats` records out: tensor verdicts (``arrays``),
shape reconciliation (``reconcile``), framework conventions (``conventions``), fused-pair slices
(``fused``), and which output item or dict key pairs with which (``items``, ``keyed``). Nothing
here imports paddle, torch or :mod:`padiff.runtime`; ``tests/test_architecture.py`` checks it.
"""
