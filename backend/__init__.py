"""Provides the pixmart backend package."""
