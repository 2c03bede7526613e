"""The HTTP adapter: Litestar controllers and msgspec structs over the use cases."""
