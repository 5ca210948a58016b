#!/usr/bin/env python3
"""Builds a large GH Archive-style input (JSON lines, optionally gzip) from the recorded events.

The events of testdata/ (the GH Archive hours and the JSON-lines samples) are repeated until
the output reaches the requested size; copy k gets fresh ids (id + k * 10^11) and times shifted by
k hours, so that every kept event is distinct and the mix of types, sizes and payload shapes is
that of real data. Events without an id (the pre-2015 format) are repeated as they are.

    scripts/make-bench-input.py --out /tmp/bench/2015-01-01-0.json --size-mb 500 [--gzip]

Never commit the output.
"""

import argparse
import datetime
import gzip
import json
import os
import sys

ID_MARK = "\u0000ID\u0000"
TS_MARK = "\u0000TS\u0000"
ID_STRIDE = 10**11


def data_dir():
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.join(here, "..", "testdata")


def source_lines(root):
    files = sorted(
        os.path.join(root, sub, name)
        for sub in ("gharchive", "samples")
        for name in os.listdir(os.path.join(root, sub))
        if name.endswith((".json.gz", ".jsonl", ".jsonl.gz"))
    )
    for path in files:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rb") as f:
            for line in f:
                if line.strip():
                    yield line


def templates(root):
    """Each record as (pieces, id, time): the JSON line split around its id and created_at."""
    out = []
    for line in source_lines(root):
        record = json.loads(line)
        raw_id, raw_ts = record.get("id"), record.get("created_at")
        if not isinstance(raw_id, str) or not raw_id.isdigit() or not isinstance(raw_ts, str):
            out.append(([line.decode().rstrip("\n")], None, None))
            continue
        try:
            ts = datetime.datetime.strptime(raw_ts, "%Y-%m-%dT%H:%M:%SZ")
        except ValueError:
            out.append(([line.decode().rstrip("\n")], None, None))
            continue
        record["id"], record["created_at"] = ID_MARK, TS_MARK
        text = json.dumps(record, separators=(",", ":"), ensure_ascii=False)
        head, rest = text.split(json.dumps(ID_MARK), 1)
        middle, tail = rest.split(json.dumps(TS_MARK), 1)
        out.append(([head, middle, tail], int(raw_id), ts))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--size-mb", type=float, default=500)
    parser.add_argument("--gzip", action="store_true", help="gzip the output")
    parser.add_argument(
        "--gzip-level", type=int, default=1, help="gzip level (GH Archive's files are level 6)"
    )
    parser.add_argument(
        "--first-copy",
        type=int,
        default=0,
        help="number of the first copy: files built with disjoint ranges share no id",
    )
    args = parser.parse_args()

    records = templates(data_dir())
    target = int(args.size_mb * 1e6)
    written = lines = 0
    copies = args.first_copy
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    raw = open(args.out, "wb")
    out = (
        gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=args.gzip_level)
        if args.gzip
        else raw
    )
    hour = datetime.timedelta(hours=1)
    while written < target:
        shift = hour * copies
        chunk = []
        for pieces, event_id, ts in records:
            if event_id is None:
                chunk.append(pieces[0])
                continue
            chunk.append(
                '%s"%d"%s"%s"%s'
                % (
                    pieces[0],
                    event_id + copies * ID_STRIDE,
                    pieces[1],
                    (ts + shift).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    pieces[2],
                )
            )
        data = ("\n".join(chunk) + "\n").encode()
        out.write(data)
        written += len(data)
        lines += len(chunk)
        copies += 1
    out.close()
    if out is not raw:
        raw.close()
    print(
        f"{args.out}: {lines} lines, {written / 1e6:.1f} MB uncompressed, "
        f"copies {args.first_copy} to {copies - 1}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
