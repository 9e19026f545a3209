"""Benchmarks: `sysward bench ...` subcommands and the workloads they drive."""
