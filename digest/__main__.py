"""`python -m digest` runs the command line."""

from digest.app.cli import entry

entry()
