"""Provides the TensorFlow embedder, the vector index and the similarity services."""
