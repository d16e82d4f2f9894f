"""Example worker apps run by the subprocess tests (``pipeline worker run tests.workers.X:app``)."""
