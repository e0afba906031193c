"""Fixtures of the report tests (kept in report_fixtures, a name no other test dir uses)."""

from report_fixtures import run_dir  # noqa: F401
