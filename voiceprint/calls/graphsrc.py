"""The lead graph's DuckDB reads of the carrier Parquet files (voiceprint.graph builds edges from them).

Kept with the rest of the CDR SQL; duckdb loads inside the functions."""

from __future__ import annotations

from ..errors import DataError


def _duck_rows(sql: str, params: list | None = None) -> tuple[list[str], list[tuple]]:
    """(column names, rows) of one DuckDB query over a CDR file; a bad file is a DataError."""
    import duckdb

    con = duckdb.connect()
    try:
        cur = con.execute(sql, params or [])
        return [d[0] for d in cur.description], cur.fetchall()
    except duckdb.Error as err:
        raise DataError(f"cannot read the CDR file for the lead graph: {str(err).splitlines()[0]}") from err
    finally:
        con.close()


def registry_rows(path: str) -> tuple[list[str], list[tuple]]:
    """(columns, rows) of an imported registry Parquet."""
    return _duck_rows("SELECT * FROM read_parquet(?)", [path])


def shared_handset_rows(calls: str, max_numbers: int) -> list[tuple]:
    """(number, IMEI, calls) for handsets used by 2..``max_numbers`` numbers in a calls Parquet, by IMEI then number."""
    _, rows = _duck_rows(
        f"""WITH h AS (SELECT number, imei, count(*) AS calls FROM read_parquet(?) WHERE imei IS NOT NULL AND imei <> ''
                     GROUP BY number, imei),
            shared AS (SELECT imei FROM h GROUP BY imei HAVING count(*) BETWEEN 2 AND {int(max_numbers)})
            SELECT h.number, h.imei, h.calls FROM h JOIN shared USING (imei) ORDER BY h.imei, h.number""", [calls])
    return rows
