"""The store protocols over HTTP, for ``LOOPML_TRACKING_URI=http(s)://...``."""

from loopml.store.rest.tracking import RestTrackingStore

__all__ = ["RestTrackingStore"]
