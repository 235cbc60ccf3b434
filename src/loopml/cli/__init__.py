"""The ``loopml`` command line: one module per command group, over the tracking service."""
