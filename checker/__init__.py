"""torch-katas: learn PyTorch internals by re-implementing them."""

__version__ = "0.1.0"
