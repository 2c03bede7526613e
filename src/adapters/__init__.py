"""Adapters: the ports implemented (models, images, fake backend), wire format, HTTP API, metrics, executor."""
