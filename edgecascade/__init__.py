"""The ``edgecascade`` command: one entry point that dispatches to each component."""

__version__ = "0.1.0"
