"""Parameter sets as data (the JSON contract shared with the optimizer) and the one source of the
parameters in force: the ledger's newest FULL set, the defaults when none was promoted."""
