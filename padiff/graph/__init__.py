"""The structural aligner: export both models to ONNX, build graphs, match, propose a LayerMap."""
