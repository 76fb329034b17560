"""Integrations of Kaizen with other channels."""
