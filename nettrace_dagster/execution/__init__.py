"""The execution layer: every order from every strategy passes through `ExecutionEngine`.

Modules: `intents` (what a strategy asks for, what the engine answers), `decide` (the pure rule
gate and sizing), `accounting` (fills → cash, positions, locks), `engine` (the crash-safe order
flow), `reconcile`, brokers (`paper`, `ccxt_broker`), `db`/`models` (the ledger) and `resource`
(the Dagster `ExecutionResource`). Import from the submodules; this package stays import-light.
"""
