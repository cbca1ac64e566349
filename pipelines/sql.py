"""SQL sources and sinks through SQLAlchemy.

The database URL comes from an environment variable (``data.sql.url_env``, default
``DEEPCAST_DB_URL``), never from the YAML, and never appears in a message or a log: errors
name the variable, not its value. Forecasts written back to a table replace its rows in one
transaction, so readers see the old forecast or the new one, never a mix.
"""

from __future__ import annotations

import os
import re
import warnings
from typing import Any

import pandas as pd

from deepcast.features.errors import ConfigError, DataError, RunFailed
from deepcast.pipelines.shards import Shard, pack

DEFAULT_URL_ENV = "DEEPCAST_DB_URL"
SQL_OUTPUT = "sql://"
TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


def database_url(url_env: str = DEFAULT_URL_ENV) -> str:
    """The URL from the environment; ConfigError naming the variable when unset."""
    url = os.environ.get(url_env, "").strip()
    if not url:
        raise ConfigError(f"environment variable {url_env} is not set: the database URL is "
                          "read from the environment only",
                          hint=f"export {url_env}=postgresql://user@host/db (or sqlite:///"
                          "path.db); keep passwords out of the YAML")
    return url


def _redact(text: str, url: str) -> str:
    """The message with the URL and any password in it removed."""
    from sqlalchemy.engine import make_url

    out = text.replace(url, "<database URL>")
    try:
        password = make_url(url).password
    except Exception:  # noqa: BLE001 (an unparsable URL has nothing more to hide)
        password = None
    return out.replace(str(password), "***") if password else out


def _first_line(exc: BaseException) -> str:
    """The driver's own message (e.g. 'no such table: x'), first line only."""
    text = str(getattr(exc, "orig", None) or exc)
    return text.splitlines()[0] if text else type(exc).__name__


def _engine(url: str):
    from sqlalchemy import create_engine
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        return create_engine(url)
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        raise ConfigError(f"the database URL is not usable: {_redact(str(exc), url)}",
                          hint="check the URL's form (dialect+driver://...) and that the "
                          "driver is installed") from None


def read_sql(query: str, url_env: str = DEFAULT_URL_ENV) -> pd.DataFrame:
    """Run ``query`` and return its rows; DataError (no URL in it) when it fails."""
    return _some_rows(_select(query, url_env))


def _some_rows(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        raise DataError("data.sql: the query returned no rows",
                        hint="check the query's filters and the table's contents")
    return frame


def _select(query: str, url_env: str, wrap=None, batches: list[dict[str, list]] | None = None
            ) -> pd.DataFrame:
    """The rows of ``query`` (or of ``wrap(query, quote)``: a statement around it, with
    ``quote`` the dialect's identifier quoting), run once per dict of expanding list
    parameters in ``batches``, on one connection."""
    from sqlalchemy import bindparam, text
    from sqlalchemy.exc import SQLAlchemyError

    url = database_url(url_env)
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            sql = query if wrap is None else wrap(
                query.strip().rstrip(";"), conn.dialect.identifier_preparer.quote)
            parts = [pd.read_sql_query(text(sql).bindparams(
                *(bindparam(k, expanding=True) for k in params)), conn, params=params or None)
                for params in (batches or [{}])]
    except (SQLAlchemyError, pd.errors.DatabaseError) as exc:
        cause = exc.__cause__ if isinstance(exc.__cause__, SQLAlchemyError) else exc
        first = _redact(_first_line(cause), url)
        raise DataError(f"data.sql: the query failed ({type(cause).__name__}): {first}",
                        hint=f"check the query and the database in ${url_env}") from None
    finally:
        engine.dispose()
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


# series IDs per IN list of a shard's query (SQLite allows 32,766 bound values per statement)
IN_CHUNK = 5000


def plan_query(query: str, id_col: str, target_rows: int, url_env: str = DEFAULT_URL_ENV
               ) -> list[Shard]:
    """The shards of a query's rows, from one aggregate the database computes (one row
    count per series reaches this process, never the rows)."""
    counts = _select(query, url_env, lambda q, quote: (
        f"SELECT {quote(id_col)} AS id, COUNT(*) AS n FROM (\n{q}\n) AS deepcast_rows "
        f"GROUP BY {quote(id_col)}"))
    counts = _some_rows(counts)
    return pack(pd.Series(counts["n"].to_numpy("int64"),
                          index=pd.Index(counts["id"].tolist(), dtype=object)),
                target_rows)


def read_query_shard(query: str, shard: Shard, id_col: str,
                     url_env: str = DEFAULT_URL_ENV) -> pd.DataFrame:
    """The query's rows of ``shard``'s series: the query filtered by ID in the database
    (``IN`` lists of at most :data:`IN_CHUNK` IDs)."""
    ids = list(shard.ids)
    batches = [{"ids": ids[i:i + IN_CHUNK]} for i in range(0, len(ids), IN_CHUNK)]
    parts = [_select(query, url_env, lambda q, quote: (
        f"SELECT * FROM (\n{q}\n) AS deepcast_rows WHERE {quote(id_col)} IN :ids"),
        batches)] if batches else []
    if shard.nulls:  # the rows without an ID: validation reports them
        parts.append(_select(query, url_env, lambda q, quote: (
            f"SELECT * FROM (\n{q}\n) AS deepcast_rows WHERE {quote(id_col)} IS NULL")))
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def check_table_name(output: str) -> str:
    """The table of an ``sql://table`` output (ConfigError for an unsafe name)."""
    table = output.removeprefix(SQL_OUTPUT)
    if not TABLE_NAME.match(table):
        raise ConfigError(f"--output {output}: {table!r} is not a plain table name",
                          hint="use sql://name or sql://schema.name (letters, digits, _)")
    return table


def write_table(df: pd.DataFrame, output: str, url_env: str = DEFAULT_URL_ENV) -> str:
    """Replace the rows of the output table with ``df`` in one transaction."""
    from sqlalchemy import inspect, text
    from sqlalchemy import table as sa_table
    from sqlalchemy.exc import SQLAlchemyError

    table = check_table_name(output)
    schema, _, name = table.rpartition(".")
    url = database_url(url_env)
    kwargs: dict[str, Any] = {"schema": schema or None}
    try:
        engine = _engine(url)
        with engine.begin() as conn:  # one transaction: delete + insert, or nothing
            if inspect(conn).has_table(name, schema=schema or None):
                quoted = conn.dialect.identifier_preparer.format_table(
                    sa_table(name, schema=schema or None))
                conn.execute(text(f"DELETE FROM {quoted}"))
            with warnings.catch_warnings():
                if conn.dialect.name == "sqlite":
                    # SQLite matches table names without case (sql://FC writes the table
                    # fc, as any SQLite client would); pandas warns that it found no 'FC'
                    # after writing: SQLite's folding, not a failure
                    warnings.filterwarnings("ignore", message="The provided table name")
                df.to_sql(name, conn, if_exists="append", index=False, **kwargs)
    except (SQLAlchemyError, pd.errors.DatabaseError) as exc:
        first = _redact(_first_line(exc), url)
        raise RunFailed(f"writing the forecast to table {table!r} failed "
                        f"({type(exc).__name__}): {first}; the table is unchanged",
                        hint=f"check the database in ${url_env} and the table's columns"
                        ) from None
    return output

