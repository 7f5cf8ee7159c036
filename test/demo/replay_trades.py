#!/usr/bin/env python3
"""Seed 004's producer: replays the real Binance BTCUSDT trades of
test/data/binance-btcusdt-trades.csv as Binance WebSocket trade events
({"e": "trade", "E": ms, "s": ..., "t": id, "p": "9682.00", "q": "0.132",
"T": ms, "m": bool}, prices and quantities as strings), one per line as
"KEY<TAB>JSON" on stdout, for "kcat -P -K '\\t'" (the key is the symbol, so
each symbol's trades stay in one partition, in order).

The two hours of trades are replayed at a compressed real-time pace: the gap
between two trades is their real gap divided by --speed (120: the two hours
in about a minute).  Trade times T keep their real values (2020-02-22): the
replay is of history, and the features and the 60-second target are in
those times.

--synthetic N adds N synthetic symbols (SYN1USDT, ...), a random walk at the
BTC trades' times whose volatility and drift change abruptly after
--regime-at (a fraction of the replay): the regime change that should make
the model's live error jump and the watcher retrain.

--hold-after N --hold-file F holds the replay after N real trades until file
F exists (at most --hold-timeout seconds), its pace resuming from there:
the demo's watcher makes F once the first league is deployed, so that what
the report shows does not depend on how fast this machine trains it.

--bad-every K injects, every K messages, one bad message on purpose: a
negative price, a trade time in the future, a price that is not a number,
a message that is not JSON, a trade without symbol.  They must land in
streamml.dead_letters with their reason.

Only the Python standard library is used.
"""
import argparse
import csv
import json
import math
import os
import random
import sys
import time


def trade_event(symbol, tid, price, qty, t_ms, maker):
    """One Binance trade event, as the WebSocket stream sends it."""
    return json.dumps({"e": "trade", "E": t_ms + 3, "s": symbol, "t": tid,
                       "p": "%.2f" % price, "q": "%.3f" % qty, "T": t_ms,
                       "m": maker}, separators=(",", ":"))


def bad_messages(t_ms):
    """The bad messages, in turn: each a (key, value, what) triple."""
    future = int(time.time() * 1000) + 3600 * 1000
    return [
        ("BTCUSDT", trade_event("BTCUSDT", 1, -9682.0, 0.1, t_ms, False),
         "negative price"),
        ("BTCUSDT", trade_event("BTCUSDT", 2, 9682.0, 0.1, future, False),
         "trade time in the future"),
        ("BTCUSDT", '{"e":"trade","E":%d,"s":"BTCUSDT","t":3,"p":"96x2.00",'
         '"q":"0.1","T":%d,"m":false}' % (t_ms, t_ms), "price not a number"),
        ("BTCUSDT", '{"e":"trade","s":"BTCUSDT","p":"9682.0', "not JSON"),
        ("BTCUSDT", '{"e":"trade","E":%d,"t":4,"p":"9682.00","q":"0.1",'
         '"T":%d,"m":true}' % (t_ms, t_ms), "no symbol"),
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--file", required=True)
    ap.add_argument("--speed", type=float, default=120.0)
    ap.add_argument("--limit", type=int, default=0,
                    help="replay only the first N real trades (0: all)")
    ap.add_argument("--synthetic", type=int, default=1)
    ap.add_argument("--regime-at", type=float, default=0.5)
    ap.add_argument("--bad-every", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=4)
    ap.add_argument("--hold-after", type=int, default=0)
    ap.add_argument("--hold-file")
    ap.add_argument("--hold-timeout", type=float, default=300.0)
    args = ap.parse_args()

    with open(args.file, newline="") as f:
        rows = list(csv.DictReader(f))
    if args.limit:
        rows = rows[:args.limit]
    rng = random.Random(args.seed)
    syn_price = [2000.0 * (i + 1) for i in range(args.synthetic)]
    syn_id = [1 for _ in range(args.synthetic)]
    first_ms = int(rows[0]["timestamp"]) // 1000
    regime_ms = first_ms + args.regime_at * (int(rows[-1]["timestamp"]) // 1000 - first_ms)
    start = time.monotonic()
    sent = 0
    bad = 0
    out = sys.stdout
    for n, row in enumerate(rows):
        if args.hold_file and args.hold_after and n == args.hold_after:
            out.flush()
            held = time.monotonic()
            while not os.path.exists(args.hold_file):
                if time.monotonic() - held > args.hold_timeout:
                    print("replay: %s did not appear in %.0f s; going on" %
                          (args.hold_file, args.hold_timeout), file=sys.stderr)
                    break
                time.sleep(0.1)
            start += time.monotonic() - held
        t_ms = int(row["timestamp"]) // 1000
        due = start + (t_ms - first_ms) / 1000.0 / args.speed
        delay = due - time.monotonic()
        if delay > 0:
            out.flush()
            time.sleep(delay)
        out.write("BTCUSDT\t" + trade_event(
            "BTCUSDT", int(row["id"]), float(row["price"]), float(row["amount"]),
            t_ms, row["side"] == "sell") + "\n")
        sent += 1
        # a synthetic trade beside every other real one
        for i in range(args.synthetic):
            if n % 2:
                continue
            after = t_ms >= regime_ms
            vol = 0.0004 * (5 if after else 1)
            drift = (0.00025 if after else 0.0) * (1 if i % 2 == 0 else -1)
            syn_price[i] *= math.exp(drift + vol * rng.gauss(0, 1))
            sym = "SYN%dUSDT" % (i + 1)
            out.write(sym + "\t" + trade_event(
                sym, syn_id[i], syn_price[i], 0.001 + rng.expovariate(2.0), t_ms,
                rng.random() < 0.5) + "\n")
            syn_id[i] += 1
            sent += 1
        if args.bad_every and n % args.bad_every == args.bad_every // 2:
            key, value, _ = bad_messages(t_ms)[bad % 5]
            out.write(key + "\t" + value + "\n")
            bad += 1
            sent += 1
    out.flush()
    print("replayed %d messages (%d bad on purpose) in %.1f s" %
          (sent, bad, time.monotonic() - start), file=sys.stderr)


if __name__ == "__main__":
    main()
