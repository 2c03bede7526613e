"""The top layer: settings, the composition root (`bootstrap`) and the entry points (the `face-service` command)."""
