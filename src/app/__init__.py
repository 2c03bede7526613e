"""The application: use cases, settings, and the composition root that wires adapters to ports."""
