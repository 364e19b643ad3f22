"""The coordinator: capital reservations, compute quotas, the exchange API budget and the conflict
rules, shared by every process through the ledger database and audited to `conflict_log.jsonl`.

Import from the submodules (`coordinator.core.Coordinator` is the facade); this package stays
import-light because the ledger's schema module imports `coordinator.models`.
"""
