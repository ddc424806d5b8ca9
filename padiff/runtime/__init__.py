"""The eager runtime: hooks, pairing, comparison, weights, special init."""
