"""Kaizen: governance approvals and cross-channel sessions on DataFlow."""

__version__ = "0.1.0"

__all__ = ["__version__"]
