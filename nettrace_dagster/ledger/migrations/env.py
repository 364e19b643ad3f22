"""Alembic's environment for the ledger: `nettrace migrate` and the `alembic` command line run it.

It migrates the connection handed over in `config.attributes["connection"]` (how NetTrace itself
calls it), else the ledger NETTRACE_LEDGER_URL names. The logic is in `ledger/migrate.py`.
"""

from __future__ import annotations

from alembic import context

from nettrace_dagster.ledger.migrate import run_env

run_env(context)
