#!/usr/bin/env python3
"""Size breakdown of a memleak recording: one JSON line with file bytes, row
counts and (when SQLite has dbstat) bytes per table.

usage: recstats.py FILE
"""
import json
import os
import sqlite3
import sys

path = sys.argv[1]
con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
out = {"file_bytes": os.path.getsize(path)}
for wal in (path + "-wal",):
    if os.path.exists(wal):
        out["wal_bytes"] = os.path.getsize(wal)
for table in ("processes", "samples", "ticks", "names"):
    out[f"{table}_rows"] = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
if "start_ns" in meta and "end_ns" in meta:
    out["duration_s"] = (int(meta["end_ns"]) - int(meta["start_ns"])) / 1e9
try:
    rows = con.execute(
        "SELECT name, sum(pgsize) FROM dbstat GROUP BY name"
    ).fetchall()
    out["table_bytes"] = {name: size for name, size in rows}
except sqlite3.Error:
    pass
print(json.dumps(out))
