"""Reports: records produced by the engine (``records``) and their renderers."""
