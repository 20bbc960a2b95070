"""Provides the inbox domain: each user's stored notices, delivered live to their sessions."""
