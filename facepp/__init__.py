"""facepp: privacy-preserving face recognition (a pure library: no HTTP, no global state)."""

__version__ = "0.1.0"
