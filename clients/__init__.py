"""Layergate client."""
