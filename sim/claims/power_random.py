"""Layers as power iterations: claims, work in progress (see issue 5)."""
