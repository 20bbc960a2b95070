"""Provides PostgreSQL migration 6: what the image model sees in each picture, for text search."""

SQL = """
-- As SQLite's migration 5: the most probable ImageNet classes of each picture, written with its
-- embedding, for text search to find pictures by what they show.
CREATE TABLE picture_classes (
    sha256       TEXT NOT NULL REFERENCES pictures(sha256) ON DELETE CASCADE,
    class_id     INTEGER NOT NULL CHECK (class_id BETWEEN 0 AND 999),
    probability  DOUBLE PRECISION NOT NULL CHECK (probability > 0 AND probability <= 1),
    PRIMARY KEY (sha256, class_id)
);
-- A search finds the pictures of the classes its words name, and sums their probabilities
-- (an index-only scan).
CREATE INDEX picture_classes_by_class ON picture_classes(class_id, sha256, probability);

-- Which way of choosing the classes made the picture's rows; 0 for embeddings made before there
-- were any, which are embedded again in the background.
ALTER TABLE embeddings ADD COLUMN labels_version INTEGER NOT NULL DEFAULT 0;
"""
