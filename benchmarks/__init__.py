"""Benchmarks of zsnr (run from the repository root)."""
