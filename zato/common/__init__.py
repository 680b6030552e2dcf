"""Code shared by every part of the project. Zato's services import constants from here
(`from zato.common import DATA_FORMAT, ZATO_OK`), so they are here too (zato.common.api)."""

from zato.common.api import CHANNEL, DATA_FORMAT, ZATO_ERROR, ZATO_OK

__all__ = ["CHANNEL", "DATA_FORMAT", "ZATO_ERROR", "ZATO_OK"]
