"""Provides the favourites domain: kept items, and notices when they get cheaper or return."""
