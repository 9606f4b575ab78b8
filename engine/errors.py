"""The engine's base error; each I/O edge subclasses it (StoreError, NotifyError, ...)."""


class EngineError(Exception):
    """Something the engine cannot do with what it was given; the message says what."""
