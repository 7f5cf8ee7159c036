#!/usr/bin/env python3
"""Row-by-row producers of seeds 003 and 000, as "KEY<TAB>VALUE" messages
for kcat -P -K '\\t' (games: each ended by the byte 0x1e, kcat -D '\\x1e', since each
message holds two lines).  Only the Python standard library is used.

  games FILE      seed 003: the Kaggle video-game sales file, one game per
                  message as CSV with its header line (header names in lower
                  case, the SQL column names; names with commas and quotes
                  quoted as in the file), in a shuffled order (seed 3).
                  Messages end with the byte 0x1e (kcat -D "\\x1e").
  classify FILE   seed 000: the breast-cancer set (scikit-learn's CSV), one
                  JSON message per patient {"type": "patient", "id", "x1", ..., "x30"}
                  and its label {"type": "label", "id", "malignant"} --delay
                  messages later, in a shuffled order (seed 0).
"""
import argparse
import csv
import io
import json
import random
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["games", "classify"])
    ap.add_argument("file")
    ap.add_argument("--skip", type=int, default=0)
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--rate", type=float, default=0, help="messages per second (0: at once)")
    ap.add_argument("--delay", type=int, default=15)
    args = ap.parse_args()
    out = sys.stdout
    msgs = []
    if args.what == "games":
        with open(args.file, newline="") as f:
            rows = list(csv.reader(f))
        header = ",".join(h.lower() for h in rows[0])
        body = rows[1:]
        random.Random(3).shuffle(body)
        for r in body:
            buf = io.StringIO()
            csv.writer(buf, lineterminator="").writerow(r)
            msgs.append((r[2], header + "\n" + buf.getvalue()))
        sep = "\x1e"
    else:
        with open(args.file, newline="") as f:
            rows = list(csv.reader(f))[1:]
        order = list(range(len(rows)))
        random.Random(0).shuffle(order)
        pending = []
        for n, i in enumerate(order):
            r = rows[i]
            patient = {"type": "patient", "id": i}
            patient.update(("x%d" % (j + 1), float(x)) for j, x in enumerate(r[:30]))
            msgs.append(("p%d" % i, json.dumps(patient)))
            # scikit-learn's target: 0 malignant, 1 benign
            pending.append(json.dumps({"type": "label", "id": i, "malignant": r[30] == "0"}))
            if len(pending) > args.delay:
                msgs.append(("l", pending.pop(0)))
        msgs.extend(("l", p) for p in pending)
        sep = "\n"
    if args.count:
        msgs = msgs[args.skip:args.skip + args.count]
    else:
        msgs = msgs[args.skip:]
    start = time.monotonic()
    for n, (k, v) in enumerate(msgs):
        if args.rate:
            delay = start + n / args.rate - time.monotonic()
            if delay > 0:
                out.flush()
                time.sleep(delay)
        out.write(k + "\t" + v + sep)
    out.flush()
    print("produced %d messages" % len(msgs), file=sys.stderr)


if __name__ == "__main__":
    main()
