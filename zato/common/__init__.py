"""Code shared by every part of the project. Zato's services import constants from here
(`from zato.common import DATA_FORMAT, ZATO_OK`, Zato 3.0's `SMTPMessage`), so they are here
too (zato.common.api), and so is Zato 2.0's place for its exception (`from zato.common import
ZatoException`; Zato 3.x moved it to zato.common.exception, where it is too)."""

from zato.common.api import CHANNEL, DATA_FORMAT, ZATO_ERROR, ZATO_OK, SMTPMessage
from zato.common.exception import ZatoException

__all__ = ["CHANNEL", "DATA_FORMAT", "ZATO_ERROR", "ZATO_OK", "SMTPMessage", "ZatoException"]
