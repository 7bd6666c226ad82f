"""VRAM estimates and the choice: model shape, runtime profiles, card-fit, recommend, GPU detection.
Pure but for GPU detection (gpu.py)."""
