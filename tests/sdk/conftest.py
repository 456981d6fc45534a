"""Fixtures for the real-SDK tests: a fresh Lookout server per test."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import Server  # noqa: E402
from promstack import prometheus  # noqa: E402,F401  (the fixture, shared by the Prometheus tests)


@pytest.fixture()
def server():
    s = Server()
    yield s
    s.stop()
