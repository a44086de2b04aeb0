"""Layergate engine."""
