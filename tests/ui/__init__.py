"""Provides the UI tests: Pilot flows, snapshots and the start-up probe, on a real server."""
