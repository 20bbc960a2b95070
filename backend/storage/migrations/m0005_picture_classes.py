"""Provides migration 5: what the image model sees in each picture, for text search."""

SQL = """
-- The most probable ImageNet classes of each picture (backend/vision/labels.py: seen_classes),
-- written with its embedding, so that text search finds pictures by what they show: "dog" finds
-- an untagged beagle through the words of class 162 (backend/catalogue/seen.py).
CREATE TABLE picture_classes (
    sha256       TEXT NOT NULL REFERENCES pictures(sha256) ON DELETE CASCADE,
    class_id     INTEGER NOT NULL CHECK (class_id BETWEEN 0 AND 999),
    probability  REAL NOT NULL CHECK (probability > 0 AND probability <= 1),
    PRIMARY KEY (sha256, class_id)
) WITHOUT ROWID;
-- A search finds the pictures of the classes its words name, and sums their probabilities.
CREATE INDEX picture_classes_by_class ON picture_classes(class_id, sha256, probability);

-- Which way of choosing the classes made the picture's rows (backend/vision/labels.py:
-- LABELS_VERSION); 0 for embeddings made before there were any, which are embedded again in
-- the background, as those of an older model are.
ALTER TABLE embeddings ADD COLUMN labels_version INTEGER NOT NULL DEFAULT 0;
"""
