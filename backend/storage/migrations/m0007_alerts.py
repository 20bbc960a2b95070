"""Provides migration 7: saved searches that alert, and which item each one has alerted on."""

SQL = """
-- A user's saved search: the listing filters they saved and, for "looks like this picture", the
-- example's embedding. The matching columns hold the filters normalised (backend/alerts): tags
-- and words live in their own tables below, so a new item finds the searches it may satisfy
-- through their indexes instead of every search being read.
CREATE TABLE saved_searches (
    id               INTEGER PRIMARY KEY,
    user_id          INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    filters          TEXT NOT NULL,                  -- the ListingFilters saved, as JSON
    owner_id         INTEGER,                        -- one seller's items only
    min_price_cents  INTEGER,
    max_price_cents  INTEGER,
    in_stock         INTEGER NOT NULL DEFAULT 0 CHECK (in_stock IN (0, 1)),
    tag_count        INTEGER NOT NULL CHECK (tag_count >= 0),
    word_count       INTEGER NOT NULL CHECK (word_count >= 0),
    like_label       TEXT,                           -- how the example picture is named
    like_vector      BLOB,                           -- float16, L2-normalised; NULL: no picture
    like_model       TEXT,                           -- the model version that made it
    min_similarity   INTEGER CHECK (min_similarity BETWEEN 1 AND 100),
    created_at       REAL NOT NULL,
    CHECK ((like_vector IS NULL) = (min_similarity IS NULL))
);
-- "My saved searches", oldest first, and the per-user bound.
CREATE INDEX saved_searches_by_user ON saved_searches(user_id, id);
-- Searches without tags, words or picture may match any item: found without the tag or word
-- indexes.
CREATE INDEX saved_searches_open ON saved_searches(id)
    WHERE tag_count = 0 AND word_count = 0 AND like_vector IS NULL;
-- The picture searches, loaded into memory at start (one matrix product matches them all).
CREATE INDEX saved_searches_by_picture ON saved_searches(id) WHERE like_vector IS NOT NULL;

-- Each tag a saved search asks for: a new item's tags find the searches naming them.
CREATE TABLE saved_search_tags (
    tag        TEXT NOT NULL,
    search_id  INTEGER NOT NULL REFERENCES saved_searches(id) ON DELETE CASCADE,
    PRIMARY KEY (tag, search_id)
) WITHOUT ROWID;
CREATE INDEX saved_search_tags_by_search ON saved_search_tags(search_id);

-- Each token of a saved search's words (backend/catalogue/textsearch.py: tokens), the last one
-- as a prefix, as a listing matches them: a new item's tokens (and their prefixes) find them.
CREATE TABLE saved_search_words (
    word       TEXT NOT NULL,
    search_id  INTEGER NOT NULL REFERENCES saved_searches(id) ON DELETE CASCADE,
    prefix     INTEGER NOT NULL CHECK (prefix IN (0, 1)),
    PRIMARY KEY (word, search_id)
) WITHOUT ROWID;
CREATE INDEX saved_search_words_by_search ON saved_search_words(search_id);

-- The items a saved search has alerted on: each (search, item) alerts once, however often the
-- item is edited afterwards.
CREATE TABLE alert_matches (
    search_id   INTEGER NOT NULL REFERENCES saved_searches(id) ON DELETE CASCADE,
    item_id     INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
    matched_at  REAL NOT NULL,
    PRIMARY KEY (search_id, item_id)
) WITHOUT ROWID;
CREATE INDEX alert_matches_by_item ON alert_matches(item_id);
"""
