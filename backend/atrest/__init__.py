"""Encryption of pictures at rest: master keys, sealed envelopes, the store's keyring, rotation.

Every stored picture byte (originals, their metadata-stripped copies, thumbnails and previews in
the database, partial uploads) is sealed with AES-256-GCM under a data key of its own; data keys
are wrapped by a master key kept outside the data dir and the object store
(:mod:`backend.atrest.keys`). Stored objects are named by a keyed hash of their content hash
(:mod:`backend.atrest.keyring`), so a file's presence cannot be tested without the key.
"""
