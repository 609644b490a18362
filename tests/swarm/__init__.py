"""The swarm lab tests: a package, so its conftest imports as swarm.conftest and leaves tests/conftest.py
the module every other layer imports as `conftest`."""
