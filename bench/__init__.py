"""Benchmarks, each side by side with its baseline: run `python -m bench [NAME ...]`."""
