"""Provides PostgreSQL migration 3: picture embeddings in pgvector for similar-image search."""

SQL = """
-- pgvector is not a trusted extension: a superuser creates it (the server's role is one in
-- `make services`; an operator may create it beforehand, then this is a no-op).
CREATE EXTENSION IF NOT EXISTS vector;

-- Searches rely on iterative index scans (hnsw.iterative_scan), new in pgvector 0.8.
DO $$
BEGIN
    IF (SELECT string_to_array(extversion, '.')::int[] FROM pg_extension
        WHERE extname = 'vector') < ARRAY[0, 8] THEN
        RAISE EXCEPTION 'pixmart needs pgvector 0.8 or newer: ALTER EXTENSION vector UPDATE';
    END IF;
END $$;

-- One embedding per distinct picture, as in SQLite; halfvec is the same float16 precision that
-- SQLite's blob has, half the size of vector.
CREATE TABLE embeddings (
    sha256         TEXT PRIMARY KEY REFERENCES pictures(sha256) ON DELETE CASCADE,
    model_version  TEXT NOT NULL,
    vector         halfvec(1280) NOT NULL,     -- L2-normalised
    suggestions    BYTEA NOT NULL DEFAULT ''::bytea,  -- msgpack [[tag, probability], ...]
    created_at     DOUBLE PRECISION NOT NULL
);
-- Vectors stay in the row (2.6 kB: three rows a page) instead of out of line in TOAST: a search
-- scores every candidate the index proposes from its stored vector, and fetching those from
-- TOAST doubled a search's time.
ALTER TABLE embeddings ALTER COLUMN vector SET STORAGE PLAIN;
-- Counts, and the pictures a new model has yet to embed, read this rather than the wide rows.
CREATE INDEX embeddings_by_model ON embeddings(model_version, sha256);
-- Cosine distance orders the candidates; pgvector's defaults (m 16, ef_construction 64) give
-- the recall tests/contract/test_vision_repository.py asks for.
CREATE INDEX embeddings_hnsw ON embeddings USING hnsw (vector halfvec_cosine_ops);
"""
