"""The throwaway PostgreSQL server now lives in :mod:`edgecascade.postgres` (the benchmarks use it
too); these names stay importable from here for tests that already do."""

from __future__ import annotations

from edgecascade.postgres import PostgresServer, find_server_binaries, scratch_database

__all__ = ["PostgresServer", "find_server_binaries", "scratch_database"]
