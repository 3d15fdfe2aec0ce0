"""SQL on the databases the host config grants this plugin. Parameters
are ``$1``, ``$2``…; Python values map to SQL ones: ``None``, ``int``,
``float``, ``str``, ``bytes`` (and ``bool`` as 0/1)."""

from dataclasses import dataclass
from typing import Any, List, Sequence

from wit_world.imports import db as _db

from .errors import call


def _value(v: Any) -> _db.Value:
    if v is None:
        return _db.Value_Null()
    if isinstance(v, bool):
        return _db.Value_Integer(int(v))
    if isinstance(v, int):
        return _db.Value_Integer(v)
    if isinstance(v, float):
        return _db.Value_Real(v)
    if isinstance(v, str):
        return _db.Value_Text(v)
    if isinstance(v, (bytes, bytearray)):
        return _db.Value_Blob(bytes(v))
    raise TypeError(f"no SQL value for {type(v).__name__}")


def _python(v: _db.Value) -> Any:
    return None if isinstance(v, _db.Value_Null) else v.value


@dataclass
class Rows:
    """A query's answer: column names and rows of Python values."""

    columns: List[str]
    rows: List[List[Any]]

    def dicts(self) -> List[dict]:
        """Each row as ``{column: value}``."""
        return [dict(zip(self.columns, r)) for r in self.rows]


def query(db: str, sql: str, params: Sequence[Any] = ()) -> Rows:
    r = call(_db.query, db, sql, [_value(p) for p in params])
    return Rows(r.columns, [[_python(v) for v in row] for row in r.rows])


def execute(db: str, sql: str, params: Sequence[Any] = ()) -> int:
    """Runs one statement; returns the number of rows affected."""
    return call(_db.execute, db, sql, [_value(p) for p in params])


def transaction(db: str, statements: Sequence[tuple]) -> List[int]:
    """Runs every ``(sql, params)`` or none; returns rows affected per statement."""
    return call(
        _db.transaction,
        db,
        [_db.Statement(sql, [_value(p) for p in params]) for sql, params in statements],
    )
