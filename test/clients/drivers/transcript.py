"""Runs a transcript of SQL steps with psycopg 3 (server-side binding) and prints what the
application would see, as JSON, so that a run against PostgreSQL and one through dbgate compare."""
import json
import os
import re
import sys

import psycopg


def text(v):
    if v is None:
        return None
    if isinstance(v, (bytes, bytearray, memoryview)):
        return "\\x" + bytes(v).hex()
    return str(v)


def main():
    steps = json.load(sys.stdin)
    out = []
    with psycopg.connect(os.environ["DBGATE_DSN"], autocommit=True) as conn:
        for step in steps:
            sql = re.sub(r"\$(\d+)", "%s", step["sql"])
            try:
                with conn.cursor() as cur:
                    cur.execute(sql, step.get("params") or None, prepare=bool(step.get("params")))
                    if cur.description is None:
                        out.append({"status": cur.statusmessage})
                    else:
                        out.append({
                            "columns": [[d.name, d.type_code] for d in cur.description],
                            "rows": [[text(v) for v in row] for row in cur.fetchall()],
                        })
            except psycopg.Error as e:
                d = e.diag
                out.append({"error": {"code": e.sqlstate, "message": d.message_primary, "position": d.statement_position}})
    json.dump(out, sys.stdout)


main()
