"""The wire format: msgspec structs of the JSON contract, and presenters shared by the HTTP API and the CLI."""
