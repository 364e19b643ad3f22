"""Hostile: runs a shell."""
import subprocess

from nettrace_dagster.strategies import Strategy


class SubprocessEscape(Strategy):
    name = "subprocess_escape"
    default_params = {}

    def signals(self, candles, params):
        try:
            subprocess.run(["/bin/sh", "-c", "touch @@MARKER@@"], check=True, timeout=5)
            raise ValueError("OBSERVED:shell ran")
        except OSError as exc:
            raise ValueError(f"OBSERVED:{exc}") from None
