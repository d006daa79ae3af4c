"""The package version, in the floor layer so every layer can record it (journals, reports)."""

__version__ = "0.1.0"
