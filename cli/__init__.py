"""The ``sidetask`` command. Importing the package exports OpenMP's wait policy
(:mod:`engine.openmp`) before any subcommand imports torch."""

from engine.openmp import apply_wait_policy

apply_wait_policy()
