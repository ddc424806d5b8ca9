"""Layer maps as data: records, their codec, file text, review and diff (no model, no framework).

- ``types``: ``LayerPair``, ``ParamPair``, ``Unpaired``, ``Ignore``, ``ResolvedMap``, ``MapData``;
  each record reads itself from a map-file entry (the one parser) and writes itself.
- ``fields``: checked reading of one field (every problem names the entry); ``notes``: ``MapNote``
  (a note's text with a kind decisions test).
- ``codec``: a map <-> its versioned dict, every section kept.
- ``text_io``: YAML / JSON text with line numbers; atomic writes.
- ``review``: the side-by-side review; ``diff``: the ``MapDiff`` record and its rendering.

``padiff.layer_map.LayerMap`` adds what needs the live models (``padiff.weights.live_map``).
"""
