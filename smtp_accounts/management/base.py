"""What every command of this app shares: argument errors that are one line, name no option
the user did not type in full, and never echo what was typed (it may be a password); and no
library log lines (kombu, Celery), nor our own INFO lines, at the default verbosity."""

import logging
import re

from django.core.management.base import BaseCommand, CommandParser

# Below verbosity 2: libraries say only errors; the CRM's own modules only warnings (a
# command sends inline without a broker, and prints its own summary of what was sent).
QUIET_LOGGERS = {"kombu": logging.ERROR, "celery": logging.ERROR, "amqp": logging.ERROR,
                 "outbox": logging.WARNING, "smtp_accounts": logging.WARNING}  # fmt: skip
# argparse quotes what the user typed in these messages; the text before it is kept.
ECHOES = [
    (re.compile(r"unrecognized arguments: .*", re.S), "unrecognized arguments (not shown)"),
    (re.compile(r"invalid choice: .*?(\(choose from .*\))?$", re.S), r"invalid choice \1"),
    (re.compile(r"invalid (\w+) value: .*", re.S), r"invalid \1 value"),
]


def redact(message):
    """argparse's `message` without the argument the user typed."""
    for pattern, replacement in ECHOES:
        message = pattern.sub(replacement, message)
    return message.strip()


class SafeParser(CommandParser):
    """A parser that takes no abbreviated options and whose errors are one redacted line.

    `call_command()` still gets CommandError; from a shell argparse's usage is not printed.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **{**kwargs, "allow_abbrev": False})

    def error(self, message):
        message = redact(message)
        if not self.called_from_command_line:
            super().error(message)  # raises CommandError, for call_command()
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


class SafeCommand(BaseCommand):
    """A BaseCommand with SafeParser for its parser and every subparser, and quiet libraries
    below verbosity 2."""

    def create_parser(self, prog_name, subcommand, **kwargs):
        """Returns a SafeParser."""
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        # Django builds a plain CommandParser and offers no hook for its class. SafeParser
        # only overrides error() and one constructor default, so switching is safe.
        parser.__class__ = SafeParser
        parser.allow_abbrev = False
        return parser

    def add_subparsers(self, parser, **kwargs):
        """Subcommands, parsed by SafeParser too."""
        return parser.add_subparsers(parser_class=SafeParser, **kwargs)

    def execute(self, *args, **options):
        if options.get("verbosity", 1) >= 2:
            return super().execute(*args, **options)
        loggers = [logging.getLogger(name) for name in QUIET_LOGGERS]
        levels = [logger.level for logger in loggers]
        for logger, quiet in zip(loggers, QUIET_LOGGERS.values(), strict=True):
            logger.setLevel(quiet)
        try:
            return super().execute(*args, **options)
        finally:  # call_command() in a longer process: leave its logging as it was
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)
