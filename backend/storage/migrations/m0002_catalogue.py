"""Provides migration 2: pictures, items, tags, text search and uploads in progress."""

SQL = """
-- One row per distinct picture (by the SHA-256 of the original as uploaded). Items of different
-- sellers with the same picture share the row, its stored files and its derivatives. A picture
-- row (and its files) is removed when the last item referring to it is deleted.
CREATE TABLE pictures (
    sha256        TEXT PRIMARY KEY,
    format        TEXT NOT NULL,              -- JPEG, PNG or WEBP
    width         INTEGER NOT NULL,           -- as people see it (EXIF orientation applied)
    height        INTEGER NOT NULL,
    orientation   INTEGER NOT NULL,           -- EXIF orientation of the stored pixels (1-8)
    size_bytes    INTEGER NOT NULL,
    clean_sha256  TEXT NOT NULL,              -- the metadata-stripped copy served to others
    clean_size    INTEGER NOT NULL,
    created_at    REAL NOT NULL,
    thumbnail     BLOB NOT NULL               -- WebP, 256 px, read by every listing
);
CREATE INDEX pictures_by_clean ON pictures(clean_sha256);

-- Previews are big and read one at a time; kept apart so listings never page through them.
CREATE TABLE picture_previews (
    sha256   TEXT PRIMARY KEY REFERENCES pictures(sha256) ON DELETE CASCADE,
    preview  BLOB NOT NULL                    -- WebP, 1280 px
);

-- AUTOINCREMENT: an id is never reused, so order lines and watchers never mix up two items.
CREATE TABLE items (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    owner_id     INTEGER NOT NULL REFERENCES users(id),
    title        TEXT NOT NULL,
    description  TEXT NOT NULL,
    price_cents  INTEGER NOT NULL CHECK (price_cents >= 0),
    stock        INTEGER NOT NULL CHECK (stock >= 0),
    public       INTEGER NOT NULL CHECK (public IN (0, 1)),
    sha256       TEXT NOT NULL REFERENCES pictures(sha256),
    created_at   REAL NOT NULL,
    updated_at   REAL NOT NULL,
    UNIQUE (owner_id, sha256)                 -- one seller never lists the same picture twice
);
-- Keyset orders of the listings: newest first, and by price.
CREATE INDEX items_by_newest ON items(created_at, id);
CREATE INDEX items_by_price ON items(price_cents, id);
CREATE INDEX items_by_owner ON items(owner_id, created_at, id);
CREATE INDEX items_by_sha ON items(sha256);

CREATE TABLE tags (
    id       INTEGER PRIMARY KEY,
    name     TEXT NOT NULL UNIQUE,            -- normalised: [a-z0-9-]{1,32}
    starter  INTEGER NOT NULL DEFAULT 0       -- shipped tags are listed even when unused
);

CREATE TABLE item_tags (
    item_id  INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
    tag_id   INTEGER NOT NULL REFERENCES tags(id),
    PRIMARY KEY (item_id, tag_id)
) WITHOUT ROWID;
CREATE INDEX item_tags_by_tag ON item_tags(tag_id, item_id);

-- Text search over title, description and tags; rowid = items.id. Title and description follow
-- the items table through triggers (so any domain may edit them); the tags column is written by
-- the catalogue whenever an item's tags change.
CREATE VIRTUAL TABLE items_fts USING fts5(
    title, description, tags, tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER items_fts_insert AFTER INSERT ON items BEGIN
    INSERT INTO items_fts (rowid, title, description, tags)
    VALUES (new.id, new.title, new.description, '');
END;
CREATE TRIGGER items_fts_update AFTER UPDATE OF title, description ON items BEGIN
    UPDATE items_fts SET title = new.title, description = new.description WHERE rowid = new.id;
END;
CREATE TRIGGER items_fts_delete AFTER DELETE ON items BEGIN
    DELETE FROM items_fts WHERE rowid = old.id;
END;

-- Uploads in progress; the bytes live in the partial-upload area under the same id.
CREATE TABLE uploads (
    id          TEXT PRIMARY KEY,
    owner_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    sha256      TEXT NOT NULL,
    size        INTEGER NOT NULL,
    metadata    BLOB NOT NULL,                -- msgpack of the ItemMetadata last sent
    created_at  REAL NOT NULL,
    UNIQUE (owner_id, sha256)                 -- a second BeginUpload of the same file resumes
);
"""
