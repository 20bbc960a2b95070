"""Provides saved searches that alert: kept per user, matched against new and changed items."""
