"""Shared library of the services: config, logging, errors, health, metrics, stores, auth."""
