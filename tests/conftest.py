"""Shared fixtures: seed dumps, the third-party corpus when present, a fixed clock, a store in tmp_path."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from digest import store

FIXTURES = Path(__file__).parent / "fixtures"
SEEDS = sorted(FIXTURES.glob("0*.txt"))
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", help="Rewrite golden files instead of comparing.")


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    """True when the run was started with --update-golden."""
    return bool(request.config.getoption("--update-golden"))


@pytest.fixture
def seeds() -> list[Path]:
    """The five real text scrapes, in name order."""
    assert len(SEEDS) == 5
    return SEEDS


@pytest.fixture
def corpus() -> Path:
    """The third-party corpus beside the checkout (present in CI); skips when absent."""
    if not CORPUS.is_dir():
        pytest.skip("../shared/corpus is not beside this checkout")
    return CORPUS


@pytest.fixture
def now() -> datetime:
    """A fixed clock."""
    return datetime(2026, 11, 23, 7, 0, tzinfo=UTC)


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    """Where a test's SQLite store lives."""
    return tmp_path / "state" / "digest.db"


@pytest.fixture
def conn(store_path: Path) -> Iterator[sqlite3.Connection]:
    """A real, migrated SQLite store in tmp_path."""
    connection = store.open_store(store_path)
    yield connection
    connection.close()
