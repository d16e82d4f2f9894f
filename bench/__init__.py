"""Benchmarks: each compares our code with a baseline in the same run, on the same broker."""
