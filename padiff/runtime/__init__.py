"""The eager runtime: adapters, hooks, pairing, comparison, weights, special init."""
