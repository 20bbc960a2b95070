"""Provides the pixmart wire protocol: typed messages, the codec, error codes and the client."""
