"""Indexing: chunks into an index on disk: the encoder, vectors (exact or HNSW), BM25 postings, the
chunk store, and generations published atomically under a writer lock; builds locally or on Ray."""
