"""structlog set-up: readable console output for people, JSON lines for machines."""

from __future__ import annotations

import logging
import sys

import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}


def configure_logging(fmt: str = "console", level: str = "info") -> None:
    """Configure structlog once for the process (called by the composition root)."""
    # tracebacks never show local variables: a frame of create_user or accept_invitation
    # holds a clear password or an invitation token
    processors: list[structlog.typing.Processor]
    if fmt == "json":
        processors = [structlog.processors.ExceptionRenderer(
                          structlog.tracebacks.ExceptionDictTransformer(show_locals=False)),
                      structlog.processors.JSONRenderer()]
    else:
        processors = [structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback)]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            *processors,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    """Return a logger bound to a component name."""
    return structlog.get_logger(name)  # type: ignore[no-any-return]
