"""Zato-HA: an all-active integration server cluster with a leased connector server."""

__version__ = "0.1.0"
