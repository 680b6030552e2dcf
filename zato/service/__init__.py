"""Services: `from zato.service import Service`."""

from zato.service.base import Request, Response, Service

__all__ = ["Request", "Response", "Service"]
