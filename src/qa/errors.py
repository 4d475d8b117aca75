"""Domain errors. The core raises these; the CLI and the HTTP layer translate them."""


class QAError(Exception):
    """Base class: every message names the input that failed and, where there is one, the fix."""


class DocumentError(QAError):
    """A file could not be read as a document (corrupt, binary, undecodable, empty, unsupported)."""


class ModelError(QAError):
    """The embedding model could not be loaded."""


class IndexMissing(QAError):
    """No index has been published in the index directory yet."""


class IndexMismatch(QAError):
    """The published index was built with another format, model or chunker settings."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"{reason}: run `qa index --rebuild` (or POST /reindex after changing nothing else) "
                         "to rebuild it")
        self.reason = reason


class BuildInProgress(QAError):
    """Another writer holds the index lock."""


class NotFound(QAError):
    """An unknown document id."""


class CorpusMissing(QAError):
    """The corpus folder does not exist: an index of nothing would answer nothing, silently."""


class NameTaken(QAError):
    """Another file already has this name; the request did not ask to replace it."""


class ShardCountFixed(QAError):
    """`qa index --shards N` on an index of another shard count, without --rebuild."""


class ShardUnavailable(QAError):
    """A shard served on Ray Serve could not answer, on any replica: the answer would be partial."""
