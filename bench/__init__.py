"""Benchmark suite for aether-ws-bridge: load generator, baseline servers and report writer.

Run ``python -m bench --help``. Nothing here is imported by the gateway itself.
"""
