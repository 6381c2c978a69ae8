"""The ``sidetask`` command. Importing the package sets the runtime defaults of
:mod:`cli.runtime_env` before any subcommand imports torch."""

from cli.runtime_env import apply_runtime_defaults

apply_runtime_defaults()
