"""The `gapmon` command line, one module per command group.

``main`` holds the root app and the one-process commands and assembles the groups:
``kafka`` (worker, produce, report, targets, dlq), ``alerts`` (alerts, drivers),
``models`` (taxonomy). They share ``output`` (errors, rejects file, progress, printing),
``options`` (argument parsers) and ``render`` (the terminal report), and never import
each other or this package's app, so there is no import cycle.
"""

from streams.cli.main import app

__all__ = ["app"]
