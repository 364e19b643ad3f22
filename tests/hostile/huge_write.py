"""Hostile: writes a huge file in its scratch folder, and a file outside it."""
from nettrace_dagster.strategies import Strategy


class HugeWrite(Strategy):
    name = "huge_write"
    default_params = {}

    def signals(self, candles, params):
        seen = []
        try:
            with open("@@MARKER@@", "w") as fh:
                fh.write("outside")
            seen.append("outside written")
        except OSError as exc:
            seen.append(f"outside {exc}")
        chunk = "x" * (1 << 20)
        written = 0
        try:
            with open("big.bin", "w") as fh:
                for _ in range(200):
                    fh.write(chunk)
                    fh.flush()
                    written += 1
        except OSError as exc:
            seen.append(f"big after {written} MB: {exc}")
        raise ValueError("OBSERVED:" + "; ".join(seen))
