"""Code shared by every part of the project. Zato 3.2's services import two constants from here
(`from zato.common import DATA_FORMAT`), so they are here too (zato.common.api)."""

from zato.common.api import CHANNEL, DATA_FORMAT

__all__ = ["CHANNEL", "DATA_FORMAT"]
