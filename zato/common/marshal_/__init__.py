"""Zato's zato.common.marshal_, for models that import Model from it (Zato 3.2)."""
