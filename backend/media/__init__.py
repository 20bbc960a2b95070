"""Provides image decoding, validation, derivatives and the content-addressed blob store."""
