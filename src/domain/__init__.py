"""The application core: value types, the ports the use cases need, the use cases and their errors.

Nothing here imports a web framework, a model runtime or a database driver; numpy is the only
third-party import, used as the array type for pixels and embedding vectors.
"""
