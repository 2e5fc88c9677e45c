"""One error hierarchy: every message says what happened, where, and what to do next."""


class MatcherError(Exception):
    """Base class of every error the engine raises on purpose."""


class SchemaError(MatcherError):
    """An input file does not have the shape the engine expects (columns, keys, types)."""


class ValidationFailedError(MatcherError):
    """Too many rows of a source failed validation; nothing was published."""


class UnknownEntityError(MatcherError):
    """An id (gap, chain, segment, enterprise, snapshot, version) does not exist."""


class ArtifactNotFoundError(MatcherError):
    """No published artifact (or snapshot) where one is needed."""


class ArtifactCorruptError(MatcherError):
    """A published artifact does not match its manifest."""


class ConfigError(MatcherError):
    """A setting, mapping or chain map is invalid."""


class ModelNotFoundError(MatcherError):
    """The embedding model cannot be loaded from local disk (nothing is ever downloaded)."""
