"""The only code that persists anything: interfaces, backends and the URI registry."""
