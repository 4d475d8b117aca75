"""Answering: a question against an index: retrieval (dense + BM25, fused), evidence sentences, the
extractive answer with [n] markers, its confidence and abstention, questions about a document, and
the metrics `qa eval` and the benches report."""
