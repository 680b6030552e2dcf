"""Zato's zato.common.ext, for service modules that import what Zato kept there."""
