#!/usr/bin/env python3
"""Runs the ClickHouse store's SQL on current ClickHouse (chDB, in process) and on the server at
CLICKHOUSE_URL (Debian's 18.16 in CI), on the same data, and compares every answer.

Usage: chdb_check.py STATEMENTS.json

STATEMENTS.json comes from `cargo xtask chdb-statements FILE`
(github_stats_core::conformance::clickhouse::chdb_check_statements): the store's DDL, the
recorded events as INSERT ... VALUES, and every query template filled with real values. Each query is run before and after a simulated race (every event inserted twice), then
OPTIMIZE TABLE ... FINAL and a recount of the count tables (ClickHouseStore::recount), which
must bring every answer back. Exits non-zero when a
statement fails on either server or an answer differs.
"""

import json
import os
import sys
import tempfile
import urllib.error
import urllib.request


def http_runner(url):
    def run(sql, fmt=None):
        body = sql if fmt is None else f"{sql} FORMAT {fmt}"
        request = urllib.request.Request(url, data=body.encode(), method="POST")
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.read().decode()
        except urllib.error.HTTPError as e:
            raise RuntimeError(e.read().decode().strip()) from None

    return run


def chdb_runner(path):
    from chdb import session

    s = session.Session(path)

    def run(sql, fmt=None):
        result = s.query(sql, fmt or "CSV")
        error = getattr(result, "error_message", None)
        if callable(error):
            error = error()
        if error:
            raise RuntimeError(error)
        return result.bytes().decode()

    return run


def answers(run, doc, label):
    """Runs the queries; returns {name: rows}."""
    out = {}
    for q in doc["queries"]:
        try:
            data = json.loads(run(q["sql"], "JSONCompact"))["data"]
        except Exception as e:  # noqa: BLE001 - report which statement failed
            raise SystemExit(f"{label}: query {q['name']} failed: {e}\n  {q['sql'][:500]}")
        # 64-bit integers are quoted in JSON by 18.16 and not by current releases: compare text.
        data = [[str(v) for v in row] for row in data]
        if q.get("unordered"):
            data = sorted(data, key=json.dumps)
        out[q["name"]] = data
    return out


def exercise(run, doc, label):
    for sql in doc["setup"] + doc["load"]:
        try:
            run(sql)
        except Exception as e:  # noqa: BLE001
            raise SystemExit(f"{label}: statement failed: {e}\n  {sql[:500]}")
    before = answers(run, doc, label)
    # Every event inserted a second time, as two writers racing would: the copies merge away
    # and the recount corrects the counts, so the answers must come back to `before`.
    for sql in doc.get("race", []) + doc["optimize"]:
        try:
            run(sql)
        except Exception as e:  # noqa: BLE001
            raise SystemExit(f"{label}: statement failed: {e}\n  {sql}")
    after = answers(run, doc, label)
    version = before["server_version"]
    for name in before:
        if name != "server_version" and before[name] != after[name]:
            raise SystemExit(
                f"{label}: {name} changed after a race, OPTIMIZE FINAL and a recount: "
                f"{before[name]} -> {after[name]}"
            )
    run(doc["setup"][0])  # drop the database again
    return version, before


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    doc = json.load(open(sys.argv[1]))
    url = os.environ.get("CLICKHOUSE_URL")
    if not url:
        raise SystemExit("CLICKHOUSE_URL is not set: the check compares chDB with that server")
    old_version, old = exercise(http_runner(url), doc, f"server at {url}")
    with tempfile.TemporaryDirectory(prefix="github-stats-chdb-") as path:
        new_version, new = exercise(chdb_runner(path), doc, "chDB")
    compare = {q["name"] for q in doc["queries"] if q.get("compare", True)}
    differ = [name for name in sorted(compare) if old[name] != new[name]]
    for name in differ:
        print(
            f"DIFFERENT {name}:\n  {old_version}: {str(old[name])[:400]}\n"
            f"  {new_version}: {str(new[name])[:400]}"
        )
    if differ:
        raise SystemExit(f"{len(differ)} of {len(compare)} answers differ")
    nonzero = sum(1 for name in compare if old[name] not in ([], [["0"]]))
    print(
        f"chdb check: {len(doc['setup'])} schema statements, {doc['events']} events, "
        f"{len(compare)} queries ({nonzero} with non-empty answers) agree between "
        f"ClickHouse {old_version[0][0]} and chDB {new_version[0][0]}, before and after "
        "a race, OPTIMIZE FINAL and a recount"
    )


if __name__ == "__main__":
    main()
