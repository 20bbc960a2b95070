"""Provides migration 3: picture embeddings for similar-image search."""

SQL = """
-- One embedding per distinct picture: items of different sellers sharing a picture share it.
-- model_version says which embedder made the vector, so a model change re-embeds in the
-- background instead of mixing incomparable vectors.
CREATE TABLE embeddings (
    sha256         TEXT PRIMARY KEY REFERENCES pictures(sha256) ON DELETE CASCADE,
    model_version  TEXT NOT NULL,
    vector         BLOB NOT NULL,              -- float16 little-endian, L2-normalised
    suggestions    BLOB NOT NULL DEFAULT x'',  -- msgpack [[tag, probability], ...]
    created_at     REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX embeddings_by_model ON embeddings(model_version);
"""
