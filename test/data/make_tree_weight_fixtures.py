#!/usr/bin/python3
"""Generates the expected predictions of weighted tree models, once.

Run with Debian's python3-xgboost (XGBoost 1.7, the library the extension
links) and numpy, after make_tree_fixtures.py (it reads trees.csv):
    /usr/bin/python3 test/data/make_tree_weight_fixtures.py
The CSV it writes is committed, so the test suite needs no Python.

  trees_weighted_expected.csv  id and python3-xgboost's predictions (float32
                      outputs printed with 9 significant digits), on all rows
                      of trees.csv, of the models that sql/61_tree_weights.sql
                      trains with the same parameters and the row weight
                      w = (id % 7) * 0.5, 0 for every seventh row (so rows of
                      weight 0 too): gbt_reg_w (x1, x2, x3: with missing
                      values), gbt_bin_w (x1, x2, x4) and forest_reg_w
                      (x1, x2, x4), each from pg_streamml's base_score (the
                      weighted mean of the target, as make_tree_fixtures.py
                      passes it).  xgboost.train on a DMatrix, as python
                      users train: train_gbt hands its rows over as a
                      QuantileDMatrix, which must give the same trees.
"""
import csv

import numpy as np
import xgboost as xgb

here = __file__.rsplit("/", 1)[0]
with open(here + "/trees.csv") as f:
    rows = list(csv.DictReader(f))
ids = np.array([int(r["id"]) for r in rows])
X = np.array([[float(r[c]) if r[c] != "" else np.nan
               for c in ("x1", "x2", "x3", "x4")] for r in rows],
             dtype=np.float32)
yr = np.array([float(r["yr"]) for r in rows])
yb = np.array([r["yb"] == "t" for r in rows], dtype=np.float32)
w = (ids % 7) * 0.5


def params(**kw):
    p = {"tree_method": "hist", "nthread": 1, "seed": 0, "verbosity": 0,
         "max_depth": 4, "eta": 0.3}
    p.update(kw)
    return p


def base_score(label, objective):
    """pg_streamml's base_score (src/ml/tree.c, TreeBaseScore): the weighted
    mean of the float32 labels (the share of positives for binary:logistic,
    within [1e-6, 1 - 1e-6]), summed in double precision over float32
    weights; None for the objectives XGBoost starts itself."""
    y32 = np.asarray(label, dtype=np.float32).astype(np.float64)
    w32 = np.asarray(w, dtype=np.float32).astype(np.float64)
    m = 0.0
    s = 0.0
    for yi, wi in zip(y32, w32):
        m += wi * yi
        s += wi
    m /= s
    if objective == "binary:logistic":
        return min(max(m, 1e-6), 1 - 1e-6)
    if objective in ("reg:squarederror", "reg:pseudohubererror"):
        return m
    return None


def fit_predict(cols, label, rounds, **kw):
    d = xgb.DMatrix(X[:, cols], label=label, weight=w, missing=np.nan)
    bs = base_score(label, kw.get("objective"))
    if bs is not None:
        kw["base_score"] = bs
    b = xgb.train(params(**kw), d, num_boost_round=rounds)
    return b.predict(xgb.DMatrix(X[:, cols], missing=np.nan))


out = {}
out["gbt_reg_w"] = fit_predict([0, 1, 2], yr, 20, objective="reg:squarederror")
out["gbt_bin_w"] = fit_predict([0, 1, 3], yb, 20, objective="binary:logistic")
out["forest_reg_w"] = fit_predict([0, 1, 3], yr, 1,
                                  objective="reg:squarederror", max_depth=10,
                                  eta=1, subsample=0.8, colsample_bynode=0.8,
                                  num_parallel_tree=20, **{"lambda": 1e-5})

with open(here + "/trees_weighted_expected.csv", "w", newline="") as f:
    wr = csv.writer(f, lineterminator="\n")
    wr.writerow(["id"] + list(out))
    for i in range(len(ids)):
        wr.writerow([ids[i]] + ["%.9g" % out[k][i] for k in out])
