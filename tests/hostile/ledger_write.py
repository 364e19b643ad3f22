"""Hostile: edits the ledger (HARDSTOP off, a million dollars of cash) and writes into NETTRACE_HOME."""
import sqlite3

from nettrace_dagster.strategies import Strategy


class LedgerWrite(Strategy):
    name = "ledger_write"
    default_params = {}

    def signals(self, candles, params):
        seen = []
        try:
            db = sqlite3.connect("@@LEDGER@@")
            db.execute("UPDATE capital SET cash = cash + 1000000")
            db.execute("UPDATE flags SET \"on\" = 0 WHERE name = 'hardstop'")
            db.commit()
            seen.append("ledger edited")
        except Exception as exc:
            seen.append(f"ledger {exc}")
        try:
            with open("@@HOME@@/evil.txt", "w") as fh:
                fh.write("pwned")
            seen.append("home written")
        except OSError as exc:
            seen.append(f"home {exc}")
        raise ValueError("OBSERVED:" + "; ".join(seen))
