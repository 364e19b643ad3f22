"""Opening the ledger: one SQLAlchemy URL (`NETTRACE_LEDGER_URL`), SQLite in WAL mode by default,
PostgreSQL supported.

Write transactions are serialised the way each database does it best:
- SQLite: `BEGIN IMMEDIATE` takes the database's write lock at the start, so two writers never
  both read a balance and then both spend it. A `flock` on `<db>.lock` is taken first because the
  kernel wakes a waiting process the moment the lock is free, while SQLite's own busy handler
  sleeps in 1–100 ms steps (that would wreck the reservation latency under contention).
  `synchronous=FULL` by default: a committed order intent survives even a power cut, not just
  `kill -9` (NETTRACE_LEDGER_SYNCHRONOUS=NORMAL trades that for ~0.3 ms less per commit).
- PostgreSQL: READ COMMITTED plus `SELECT … FOR UPDATE` on the account's `capital` row
  (see `lock_account`), so writers of one account queue on a row lock, other accounts don't wait.
Reads use a separate deferred-BEGIN engine on SQLite: WAL readers never block writers.

Schema: opening a ledger applies its pending Alembic revisions (`migrate.py`) rather than refusing
until someone runs `nettrace migrate`. The ledger is opened by Dagster runs, sensors, nodes and
the operator commands alike; a refusal after an upgrade would stop all of them, the kill switch
(`nettrace hardstop on`) and exits included, until a person noticed. The revisions are additive,
run in one transaction under the writers' lock and are tested on SQLite and PostgreSQL, so
applying them is the safer of the two. A ledger written by a *newer* NetTrace (a revision this
code does not know) is refused with one line: guessing its schema could corrupt money state.
"""


from __future__ import annotations

import fcntl
import os
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from nettrace_dagster.ledger import migrate
from nettrace_dagster.settings import Settings


class LedgerError(RuntimeError):
    """The ledger cannot be used as asked (bad URL, nested write transaction, …)."""


def normalise_url(url: str) -> str:
    """`postgresql://` means psycopg 3 here (the driver the project installs)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def redact(url: str) -> str:
    """The URL without its password, for messages and status output."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - never let a bad URL leak through an error path
        return "<unparseable ledger url>"


SYNC_MODES = ("FULL", "NORMAL", "EXTRA")


def sqlite_synchronous(value: str = "FULL") -> str:
    """NETTRACE_LEDGER_SYNCHRONOUS (default FULL: every commit is fsync'd, so a committed intent
    survives a power cut; NORMAL survives process crashes such as kill -9 but may lose the last
    commits to a power cut — recoverable here, because client order ids are deterministic)."""
    mode = value.strip().upper()
    if mode not in SYNC_MODES:
        raise LedgerError(f"NETTRACE_LEDGER_SYNCHRONOUS={mode!r}: expected one of {', '.join(SYNC_MODES)}")
    return mode


def _sqlite_engine(url: str, immediate: bool, synchronous: str) -> Engine:
    engine = create_engine(url, pool_size=8, max_overflow=16)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let us issue BEGIN ourselves (pysqlite's is deferred)
        cur = dbapi_conn.cursor()
        for pragma in ("busy_timeout=60000", "journal_mode=WAL", f"synchronous={synchronous}", "foreign_keys=ON"):
            cur.execute(f"PRAGMA {pragma}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class Ledger:
    """Sessions on the ledger database. Use `tx()` to change money state, `read()` to look."""

    def __init__(self, url: str, synchronous: str = "FULL") -> None:
        self.url = normalise_url(url)
        try:
            parsed = make_url(self.url)
        except Exception:  # noqa: BLE001 - ArgumentError, ValueError…: all mean "not a URL"
            # Not echoed: an unparseable URL cannot be redacted, and it may hold a password.
            raise LedgerError("ledger URL is not a database URL: expected sqlite:///path/ledger.db "
                              "or postgresql://user@host/db") from None
        self.dialect = parsed.get_backend_name()
        self._local = threading.local()
        self._lock_path: Path | None = None
        if self.dialect == "sqlite":
            if not parsed.database or parsed.database == ":memory:":
                raise LedgerError("the ledger needs a SQLite file (sqlite:///path/ledger.db), not memory")
            db_path = Path(parsed.database)
            if db_path.is_dir():
                raise LedgerError(f"ledger {db_path} is a folder, not a SQLite file")
            try:
                db_path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise LedgerError(f"ledger {db_path}: cannot create its folder ({exc.strerror})") from None
            self._lock_path = db_path.with_name(db_path.name + ".lock")
            self.synchronous = sqlite_synchronous(synchronous)
            self.engine = _sqlite_engine(self.url, True, self.synchronous)
            self.read_engine = _sqlite_engine(self.url, False, self.synchronous)
            # Coordinator leases (reservations, slots, API counts) expire by themselves and die with
            # their holders: their commits need not wait for the disk.
            self.lease_engine = _sqlite_engine(self.url, True, "NORMAL")
        elif self.dialect == "postgresql":
            # An unreachable server is a one-line error after 10 s, not a hang on the OS's TCP timeout.
            connect_args: dict[str, Any] = {} if "connect_timeout" in parsed.query else {"connect_timeout": 10}
            # Named in pg_stat_activity, so an operator (and the chaos test) can find our sessions.
            if "application_name" not in parsed.query:
                connect_args["application_name"] = "nettrace-ledger"
            try:
                self.engine = create_engine(self.url, pool_pre_ping=True, pool_size=8, max_overflow=16,
                                            connect_args=connect_args)
            except Exception as exc:  # noqa: BLE001 - e.g. an unknown driver (postgresql+nosuch://)
                raise LedgerError(f"ledger {redact(url)}: {_reason(exc, parsed.password)}") from None
            self.read_engine = self.lease_engine = self.engine
        else:
            raise LedgerError(f"ledger URL {redact(url)}: only sqlite and postgresql are supported")
        self._write = sessionmaker(self.engine, expire_on_commit=False)
        self._read = sessionmaker(self.read_engine, expire_on_commit=False)
        self._lease = sessionmaker(self.lease_engine, expire_on_commit=False)
        self.schema_revision: str | None = None
        # (revision before, after) of this open: equal when there was nothing to apply
        self.schema_migrated: tuple[str | None, str] | None = None
        try:
            self._create_schema()
        except migrate.MigrationError as exc:
            self.dispose()
            raise LedgerError(f"ledger {redact(url)}: {exc}") from None
        except (SQLAlchemyError, OSError) as exc:
            # The first touch of the database: a corrupt or truncated file, something that is not
            # a database, a server that does not answer. Nothing was written; say so in one line.
            self.dispose()
            reason = _reason(exc, parsed.password)
            raise LedgerError(f"ledger {redact(url)} cannot be opened: {reason}") from None

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @contextmanager
    def _write_lock(self) -> Iterator[None]:
        if getattr(self._local, "depth", 0):
            raise LedgerError("nested ledger write transaction (would deadlock): pass the session down")
        self._local.depth = 1
        fd = None
        try:
            if self._lock_path is not None:
                fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            self._local.depth = 0
            if fd is not None:
                os.close(fd)  # closing releases the flock

    @contextmanager
    def tx(self, durable: bool = True) -> Iterator[Session]:
        """One write transaction: commits on success, rolls back on any exception. `durable=False`
        is for coordinator leases only (API counts, activities): on SQLite their commit skips the
        fsync — it survives a process crash, and a power cut takes their holders down too."""
        with self._write_lock(), (self._write if durable else self._lease)() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only snapshot (never blocks writers on SQLite WAL)."""
        with self._read() as session, session.begin():
            yield session

    def _create_schema(self) -> None:
        """Bring the schema to this NetTrace's revision (ledger/migrate.py). A ledger already
        there costs one read; otherwise the revisions run in one transaction under the writers'
        lock, so two processes opening an old ledger at once migrate it once."""
        target = migrate.head()
        with self.read_engine.connect() as conn:
            self.schema_revision = migrate.current(conn)
        if self.schema_revision == target:
            self.schema_migrated = (target, target)
            return
        if self.is_sqlite:
            with self._write_lock(), self.engine.begin() as conn:
                self.schema_migrated = migrate.upgrade(conn)
        else:  # an advisory lock stops two processes racing through CREATE TABLE
            with self.engine.begin() as conn:
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": zlib.crc32(b"nettrace-ledger")})
                self.schema_migrated = migrate.upgrade(conn)
        self.schema_revision = target

    def dispose(self) -> None:
        for engine in {self.engine, self.read_engine, self.lease_engine}:
            engine.dispose()


def _reason(exc: BaseException, password: str | None) -> str:
    """The database's own first line (not SQLAlchemy's wrapper), never with the password in it."""
    orig = getattr(exc, "orig", None) or exc
    text = next((line.strip() for line in str(orig).splitlines() if line.strip()), type(orig).__name__)
    return text.replace(password, "***") if password else text


def serialize(session: Session, key: str) -> None:
    """Serialise writers on `key` until the transaction ends: a PostgreSQL advisory transaction
    lock (for state with no row to lock yet); SQLite's BEGIN IMMEDIATE already serialises all."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": zlib.crc32(key.encode())})


_CACHE: dict[tuple[str, int], Ledger] = {}
_CACHE_LOCK = threading.Lock()


def open_ledger(url: str, synchronous: str = "FULL") -> Ledger:
    """The process's one `Ledger` for `url` (engines hold pools; never share them across fork)."""
    key = (normalise_url(url), synchronous, os.getpid())
    with _CACHE_LOCK:
        ledger = _CACHE.get(key)
        if ledger is None:
            ledger = _CACHE[key] = Ledger(url, synchronous)
        return ledger


def ledger_of(settings: Settings) -> Ledger:
    """The ledger the settings name (NETTRACE_LEDGER_URL, NETTRACE_LEDGER_SYNCHRONOUS)."""
    return open_ledger(settings.ledger_url, settings.nettrace_ledger_synchronous)
