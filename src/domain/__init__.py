"""The face domain: value types, the ports the application needs, and the errors it can raise.

Nothing here imports a web framework or a model runtime; numpy is the only third-party import,
used as the array type for pixels and embedding vectors.
"""
