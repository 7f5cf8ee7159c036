#!/usr/bin/python3
"""Generates the input streams of the drift-detection tests (sql/45_drift.sql).

Run with Debian's python3 (standard library; scipy only for the KSWIN check):
    /usr/bin/python3 test/data/make_drift_streams.py
The CSVs it writes are committed, so the test suite needs neither.

  drift_streams.csv   stream, i (0-based, River's index), x: the streams of
                      River's docstring examples, drawn exactly as River's
                      examples draw them with Python's random module:
    two_dists_12345   random.Random(12345): choices([0, 1], k=1000) +
                      choices(range(4, 8), k=1000)   (ADWIN, PageHinkley,
                      KSWIN examples)
    bits_42           random.Random(42): choices([0, 1], k=1000) +
                      choices([0, 1], k=1000, weights=[0.3, 0.7])  (DDM, EDDM)
    four_segments_42  random.Random(42): four segments of choices([0, 1]) /
                      choices(range(4, 8)), 1000 each (River's
                      test_adwin_regression.py, test_multiple_drifts)
    gauss_12345       random.Random(12345): 200 gauss(0, 1) then 200
                      gauss(3, 1)   (CUSUM example)
    kswin_shift_7     random.Random(7): 600 gauss(0, 1) then 600 gauss(0.8, 1)
  kswin_expected.csv  stream, params, detections: River's KSWIN.update run
                      here verbatim on kswin_shift_7 and two_dists_12345
                      (random.Random(seed).sample and scipy.stats.ks_2samp
                      with method="auto"), positions 0-based
"""
import collections
import csv
import itertools
import json
import os
import random

here = os.path.dirname(os.path.abspath(__file__))
streams = {}

rng = random.Random(12345)
streams["two_dists_12345"] = rng.choices([0, 1], k=1000) + rng.choices(range(4, 8), k=1000)

rng = random.Random(42)
s = rng.choices([0, 1], k=1000)
streams["bits_42"] = s + rng.choices([0, 1], k=1000, weights=[0.3, 0.7])

rng = random.Random(42)
streams["four_segments_42"] = (rng.choices([0, 1], k=1000) + rng.choices(range(4, 8), k=1000)
                               + rng.choices([0, 1], k=1000) + rng.choices(range(4, 8), k=1000))

rng = random.Random(12345)
stable = [rng.gauss(0, 1) for _ in range(200)]
shifted = [rng.gauss(3, 1) for _ in range(200)]
streams["gauss_12345"] = stable + shifted

rng = random.Random(7)
streams["kswin_shift_7"] = [rng.gauss(0, 1) for _ in range(600)] + [rng.gauss(0.8, 1) for _ in range(600)]

with open(os.path.join(here, "drift_streams.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["stream", "i", "x"])
    for name, xs in streams.items():
        for i, x in enumerate(xs):
            w.writerow([name, i, repr(float(x))])


def kswin(data, alpha=0.005, window_size=100, stat_size=30, seed=None):
    """River's drift.KSWIN (update and _reset), verbatim but for the class."""
    from scipy import stats
    import warnings

    def reset():
        return collections.deque(maxlen=window_size), random.Random(seed)

    window, rng = reset()
    detected, out = False, []
    for i, x in enumerate(data):
        if detected:
            window, rng = reset()
        window.append(x)
        if len(window) >= window_size:
            rnd_window = [window[r] for r in rng.sample(range(window_size - stat_size), stat_size)]
            most_recent = list(itertools.islice(window, window_size - stat_size, window_size))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", category=RuntimeWarning)
                st, p_value = stats.ks_2samp(rnd_window, most_recent, method="auto")
            detected = p_value <= alpha and st > 0.1
        else:
            detected = False
        if detected:
            out.append(i)
    return out


try:
    import scipy  # noqa: F401
except ImportError:
    print("scipy missing: kswin_expected.csv left as it is")
else:
    cases = [
        ("two_dists_12345", {"alpha": 0.0001, "seed": 42}),
        ("kswin_shift_7", {"seed": 1}),
        ("kswin_shift_7", {"alpha": 0.05, "seed": 3}),
        ("kswin_shift_7", {"window_size": 200, "stat_size": 6, "alpha": 0.05, "seed": 5}),
        ("kswin_shift_7", {"window_size": 300, "stat_size": 100, "seed": 2**40 + 11}),
    ]
    with open(os.path.join(here, "kswin_expected.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["stream", "params", "detections"])
        for name, params in cases:
            got = kswin(streams[name], **params)
            w.writerow([name, json.dumps(params), json.dumps(got)])
            print(name, params, got)
