"""Hostile: walks object.__subclasses__() to os.system without importing anything."""
from nettrace_dagster.strategies import Strategy


class SubclassesWalk(Strategy):
    name = "subclasses_walk"
    default_params = {}

    def signals(self, candles, params):
        for cls in ().__class__.__base__.__subclasses__():
            if cls.__name__ == "_wrap_close":
                system = cls.__init__.__globals__["system"]
                status = system("touch @@MARKER@@")
                raise ValueError(f"OBSERVED:system returned {status}")
        raise ValueError("OBSERVED:no _wrap_close")
