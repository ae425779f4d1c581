"""Benchmarks, each runnable as `uv run python bench/<name>.py`."""
