"""Converters for SSD's detection layers (filled in by the detection work)."""
