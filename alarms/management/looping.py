"""A management command that runs once, or every N seconds with `--loop N` (for compose)."""

import abc
import logging
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, close_old_connections

logger = logging.getLogger(__name__)


class LoopCommand(BaseCommand, abc.ABC):
    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--loop",
            type=float,
            metavar="SECONDS",
            help="Run again every SECONDS seconds until stopped (Ctrl-C or SIGTERM).",
        )

    @abc.abstractmethod
    def run_once(self) -> str:
        """Do one round of work and return a line saying what it did."""

    def handle(self, *args, loop: float | None = None, **options) -> None:
        if loop is None:
            self.stdout.write(self.run_once())
            return
        if loop <= 0:
            raise CommandError("--loop takes a number of seconds above 0.")
        try:
            while True:
                started = time.monotonic()
                close_old_connections()
                try:
                    self.stdout.write(self.run_once())
                except DatabaseError as error:
                    # The database went away: say so and try again next round.
                    logger.warning("%s failed: %s", self.__module__, error)
                time.sleep(max(0.0, loop - (time.monotonic() - started)))
        except KeyboardInterrupt:
            self.stdout.write("stopped")
