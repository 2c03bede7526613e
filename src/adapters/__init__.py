"""Adapters: the concrete implementations of the domain's ports, and the HTTP entry point."""
