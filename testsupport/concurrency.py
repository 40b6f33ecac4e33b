"""Run a function in several threads that start together (a `threading.Barrier`)."""

import threading
from collections.abc import Callable

from django.db import connection


def run_together(function: Callable[[], object], *, threads: int = 2) -> list[object]:
    """Call `function` in `threads` threads released at once; its results, or raise the first error.

    Each thread has its own database connection (closed at its end), so tests using this need
    committed data (`transactional_db`).
    """
    barrier = threading.Barrier(threads)
    results: list[object] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            results.append(function())
        except BaseException as error:  # re-raised in the caller
            errors.append(error)
        finally:
            connection.close()

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if errors:
        raise errors[0]
    return results
