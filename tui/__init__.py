"""Provides the pixmart tui package."""
