"""The one base class of every error mcusim reports to a user (the CLI prints these without a traceback)."""


class McusimError(Exception):
    """An error with a message written for the user: what went wrong, where, and how to fix it."""
    exit_code = 2


class ModelError(McusimError):
    """A model description is missing, malformed or inconsistent."""
