"""The agent: the pipeline that wires the stages (sensors -> decoder -> enrichment -> rules ->
outputs), its bounded stage queues, its counters and the /metrics and /health endpoint.

Nothing is imported here on purpose: ``sysward.agent.engine`` pulls in the kernel side, and
modules below the agent must be able to import ``sysward.agent.telemetry`` without it.
"""
