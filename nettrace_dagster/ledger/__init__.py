"""The ledger: every table (money, the coordinator's leases, the trader's cursor), opening the
database (`Ledger`, `open_ledger`, `ledger_of`) and the bookkeeping that runs inside one of its
transactions (`accounting`). It sits below `execution`, `coordinator` and `trading`, and imports
none of them."""
