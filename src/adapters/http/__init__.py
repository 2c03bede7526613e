"""The HTTP adapter: the Litestar application, its controllers, authentication, admission and error mapping."""
