"""`python -m streams.cli`: the same as the `gapmon` command."""

from streams.cli.main import app

app()
