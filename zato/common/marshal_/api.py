"""Zato 3.2's `from zato.common.marshal_.api import Model`: the base class of dataclass models,
the same as `zato.server.service.Model`."""

from zato.service.sio import Model as Model
