"""Multi-station fusion onto one grid (numba CPU kernels; an optional CUDA kernel)."""
