"""Benchmarks (run each as a script: `.venv/bin/python bench/bench_X.py`)."""
