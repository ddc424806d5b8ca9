"""The live engine: hooks on both models, call pairing, gradient exchange, the op view."""
