"""Converters for reshaping, slicing and resizing layers (filled in by the detection/segmentation work)."""
