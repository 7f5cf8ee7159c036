#!/usr/bin/python3
"""Generates the tree-model test fixtures and their expected predictions, once.

Run with Debian's python3-xgboost (XGBoost 1.7, the library the extension
links) and numpy:
    /usr/bin/python3 test/data/make_tree_fixtures.py
The CSVs it writes are committed, so the test suite needs no Python.

  trees.csv           3000 rows: id, grp ('A'/'B'), x1..x4, where x3 is missing
                      (empty, NULL in SQL) in one row of 6; targets yr (numeric,
                      nonlinear in x1..x3), yb (boolean), yc (text: 'a', 'b', 'c')
  trees_expected.csv  id and python3-xgboost's predictions (float32 outputs
                      printed with 9 significant digits) of the models that
                      sql/50_tree.sql trains with the same parameters, on all
                      rows: gbt_reg (x1, x2, x3: with missing values), gbt_bin
                      (x1, x2, x4: without), gbt_multi_a/b/c (x1, x2, x3),
                      forest_reg (x1, x2, x4), tree_bin (x1, x2, x3) and
                      grp_reg (per-group gbt on x1, x2, x3).
  league.csv          1200 rows: id, t (time order), u, v, ynl (nonlinear in u,
                      v: trees must win), ylin (linear in u, v: linear must win)
"""
import csv

import numpy as np
import xgboost as xgb

rng = np.random.default_rng(12)
n = 3000
x = rng.uniform(-2, 2, size=(n, 4))
x3_missing = np.arange(n) % 6 == 5
grp = np.where(np.arange(n) % 3 == 0, "A", "B")
yr = np.sin(2 * x[:, 0]) + x[:, 1] ** 2 + np.where(x3_missing, 0.5, x[:, 2]) \
    + rng.normal(0, 0.1, n)
yb = (x[:, 0] * x[:, 1] + 0.3 * rng.normal(size=n)) > 0
score = x[:, 0] + np.where(x3_missing, 0, x[:, 2])
yc = np.where(score < -1, "a", np.where(score < 1, "b", "c"))

X = x.astype(np.float32)
X[x3_missing, 2] = np.nan


def params(**kw):
    p = {"tree_method": "hist", "nthread": 1, "seed": 0, "verbosity": 0,
         "max_depth": 4, "eta": 0.3}
    p.update(kw)
    return p


def base_score(label, objective):
    """pg_streamml's base_score (src/ml/tree.c, TreeBaseScore): the mean of
    the float32 labels (the share of positives for binary:logistic, within
    [1e-6, 1 - 1e-6]); None for the objectives XGBoost starts itself."""
    m = float(np.mean(np.asarray(label, dtype=np.float32), dtype=np.float64))
    if objective == "binary:logistic":
        return min(max(m, 1e-6), 1 - 1e-6)
    if objective in ("reg:squarederror", "reg:pseudohubererror") or \
            (objective == "count:poisson" and m > 0):
        return m
    return None


def fit_predict(cols, label, rounds, rows=None, **kw):
    rows = np.arange(n) if rows is None else rows
    d = xgb.DMatrix(X[np.ix_(rows, cols)], label=label[rows], missing=np.nan)
    bs = base_score(label[rows], kw.get("objective"))
    if bs is not None:
        kw["base_score"] = bs
    b = xgb.train(params(**kw), d, num_boost_round=rounds)
    return b.predict(xgb.DMatrix(X[np.ix_(rows, cols)], missing=np.nan))


out = {}
out["gbt_reg"] = fit_predict([0, 1, 2], yr, 20, objective="reg:squarederror")
out["gbt_bin"] = fit_predict([0, 1, 3], yb.astype(np.float32), 20,
                             objective="binary:logistic")
cls = np.searchsorted(np.array(["a", "b", "c"]), yc).astype(np.float32)
multi = fit_predict([0, 1, 2], cls, 10, objective="multi:softprob",
                    num_class=3)
out["gbt_multi_a"], out["gbt_multi_b"], out["gbt_multi_c"] = multi.T
out["forest_reg"] = fit_predict([0, 1, 3], yr, 1, objective="reg:squarederror",
                                max_depth=10, eta=1, subsample=0.8,
                                colsample_bynode=0.8, num_parallel_tree=20,
                                **{"lambda": 1e-5})
out["tree_bin"] = fit_predict([0, 1, 2], yb.astype(np.float32), 1,
                              objective="binary:logistic", max_depth=8, eta=1)
grp_pred = np.zeros(n, dtype=np.float32)
for g in ("A", "B"):
    rows = np.nonzero(grp == g)[0]
    grp_pred[rows] = fit_predict([0, 1, 2], yr, 20, rows=rows,
                                 objective="reg:squarederror")
out["grp_reg"] = grp_pred


def f(v):
    return "" if np.isnan(v) else repr(float(v))


with open("test/data/trees.csv", "w", newline="") as fh:
    w = csv.writer(fh)
    w.writerow(["id", "grp", "x1", "x2", "x3", "x4", "yr", "yb", "yc"])
    for i in range(n):
        w.writerow([i + 1, grp[i], f(X[i, 0]), f(X[i, 1]), f(X[i, 2]),
                    f(X[i, 3]), repr(float(yr[i])), "t" if yb[i] else "f",
                    yc[i]])
names = list(out)
with open("test/data/trees_expected.csv", "w", newline="") as fh:
    w = csv.writer(fh)
    w.writerow(["id"] + names)
    for i in range(n):
        w.writerow([i + 1] + ["%.9g" % out[k][i] for k in names])

# The league: time-ordered rows; a nonlinear target where trees must beat
# the linear model, a linear one where they must not.
m = 1200
u = rng.uniform(-2, 2, m)
v = rng.uniform(-2, 2, m)
ynl = np.sign(u) * np.sign(v) * 2 + np.cos(3 * u) + rng.normal(0, 0.1, m)
ylin = 1.5 * u - 2 * v + rng.normal(0, 0.3, m)
with open("test/data/league.csv", "w", newline="") as fh:
    w = csv.writer(fh)
    w.writerow(["id", "t", "u", "v", "ynl", "ylin"])
    for i in range(m):
        w.writerow([i + 1, i + 1, repr(float(u[i])), repr(float(v[i])),
                    repr(float(ynl[i])), repr(float(ylin[i]))])
