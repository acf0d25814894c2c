"""pytest-benchmark suites for emseg-lite (latency and agreement), and their report."""
