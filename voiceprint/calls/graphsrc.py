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


def shared_contact_rows(calls: str, max_degree: int, min_shared: int) -> list[tuple]:
    """(number, number, shared) for pairs of numbers that both called or were called by at least ``min_shared``
    rare counter-parties (ones in contact with 2..``max_degree`` numbers): the calling communities of
    ``calls features``, as pairs. Voice calls only; by the first number then the second."""
    _, rows = _duck_rows(
        f"""WITH pairs AS (SELECT DISTINCT number, other FROM read_parquet(?)
                          WHERE other IS NOT NULL AND other <> '' AND record = 'call'),
            degree AS (SELECT other, count(*) AS deg FROM pairs GROUP BY other),
            rare AS (SELECT p.number, p.other FROM pairs p JOIN degree d USING (other)
                     WHERE d.deg BETWEEN 2 AND {int(max_degree)})
            SELECT a.number, b.number, count(*) AS shared FROM rare a JOIN rare b ON a.other = b.other AND a.number < b.number
            GROUP BY a.number, b.number HAVING count(*) >= {int(min_shared)} ORDER BY 1, 2""", [calls])
    return rows
