"""The benchmark: the service over HTTP against in-process insightface, as ratios in one run.

Run: uv run python -m bench --help
"""
