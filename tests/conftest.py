"""Shared test configuration: hypothesis profiles.

The "ci" profile (the default) keeps property tests fast and reproducible:
no per-example deadline (timings on shared CI machines vary), a modest number
of examples and derandomized generation, so a statistical test with a
tolerance of several standard errors cannot fail at random between runs.
Select another profile with ``pytest --hypothesis-profile=dev``.
"""

from hypothesis import settings

settings.register_profile("ci", deadline=None, max_examples=15, derandomize=True)
settings.register_profile("dev", deadline=None, max_examples=100)
settings.load_profile("ci")
