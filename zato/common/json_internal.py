"""Zato's `from zato.common.json_internal import dumps, loads`, for service modules that use it:
dumps writes what services hand over (dates, Decimals, UUIDs as text: zato.common.jsonenc),
loads is the standard library's."""

from json import loads as loads

from zato.common.jsonenc import dumps as dumps
