"""Format readers behind documents.read_document: each turns a file's bytes into text and its structure.

Every reader returns the exact text that chunk offsets refer to; structure (headings, pages) is
given as offsets into that same text.
"""
