#!/usr/bin/python3
"""Generates the expected predictions of sql/52_categorical.sql and
sql/53_tree_warm_start.sql, once.

Run with Debian's python3-xgboost (XGBoost 1.7, the library the extension
links), python3-sklearn (1.2) and numpy:
    /usr/bin/python3 test/data/make_categorical_fixtures.py
The CSVs it writes are committed, so the test suite needs no Python.

  vgsales_expected.csv  Rank and the predictions, on every fifth row (Rank
                        divisible by 5), of two models of Global_Sales over
                        Platform, Genre, Publisher (categorical) and Year
                        (numeric, "N/A" missing), trained on all rows of
                        vgsales-with-na.csv (seed 003's data):
                          gbt     python3-xgboost, 20 rounds, depth 4, on
                                  scikit-learn's OneHotEncoder(max_categories
                                  =32, handle_unknown='infrequent_if_exist')
                                  of the three columns, then Year (NaN when
                                  missing); a NULL category would be NaN in
                                  all its slots, as pg_streamml encodes it
                          linreg  scikit-learn's LinearRegression on the same
                                  encoding and Year, rows with a Year only
                                  (empty where Year is missing)
                        and two rows with unseen values (Rank -1: platform
                        'NewConsole' (no other level: missing) and publisher
                        'Nobody' (the other level); Rank -2: publisher
                        'Nobody' only).
  warm_expected.csv     id and the predictions of a gbt model of trees.csv
                        (x1, x2, x3 -> yr, depth 4): 10 rounds on ids <= 2000,
                        then 10 more rounds on all rows from that booster
                        (xgb.train(..., xgb_model=booster)), as warm_start.
"""
import csv

import numpy as np
import xgboost as xgb
from sklearn.linear_model import LinearRegression
from sklearn.preprocessing import OneHotEncoder

rows = list(csv.DictReader(open("test/data/vgsales-with-na.csv")))
cats = np.array([[r["Platform"], r["Genre"], r["Publisher"]] for r in rows],
                dtype=object)
year = np.array([np.nan if r["Year"] == "N/A" else float(r["Year"])
                 for r in rows])
y = np.array([float(r["Global_Sales"]) for r in rows])
rank = np.array([int(r["Rank"]) for r in rows])

enc = OneHotEncoder(max_categories=32, handle_unknown="infrequent_if_exist",
                    sparse_output=False)
enc.fit(cats)
X = np.column_stack([enc.transform(cats), year])

params = {"tree_method": "hist", "nthread": 1, "seed": 0, "verbosity": 0,
          "max_depth": 4, "eta": 0.3, "objective": "reg:squarederror"}


def base_score(label):
    """pg_streamml's base_score for squared error (src/ml/tree.c,
    TreeBaseScore): the mean of the float32 labels."""
    return float(np.mean(np.asarray(label, dtype=np.float32), dtype=np.float64))


b = xgb.train(dict(params, base_score=base_score(y)),
              xgb.DMatrix(X.astype(np.float32), label=y, missing=np.nan),
              num_boost_round=20)
gbt = b.predict(xgb.DMatrix(X.astype(np.float32), missing=np.nan))

# The full one-hot and the intercept are collinear (each column's slots sum
# to 1): the fitted values are unique, the coefficients are not.  Fit on
# the same column space without the first slot of each column, which is
# of full rank, so that the reference is well conditioned.
widths = [len(c) if inf is None else len(c) - len(inf) + 1
          for c, inf in zip(enc.categories_, enc.infrequent_categories_)]
starts = np.cumsum([0] + widths[:-1])
keep = [j for j in range(X.shape[1]) if j not in set(starts)]
has_year = ~np.isnan(year)
lin = LinearRegression().fit(X[has_year][:, keep], y[has_year])
linreg = np.full(len(rows), np.nan)
linreg[has_year] = lin.predict(X[has_year][:, keep])

# Unseen values: Platform has 31 values (<= 32, no other level), so an
# unseen platform is missing (NaN in its slots); Publisher has 579, so an
# unseen publisher is the other level.
new = np.array([["NewConsole", "Action", "Nobody"],
                ["PS2", "Action", "Nobody"]], dtype=object)
Xn = np.column_stack([enc.transform(new), [2016.0, 2016.0]])
nplat = len(enc.categories_[0])
assert enc.infrequent_categories_[0] is None
Xn[0, :nplat] = np.nan
gbt_new = b.predict(xgb.DMatrix(Xn.astype(np.float32), missing=np.nan))
lin_new = [np.nan, lin.predict(Xn[1:2][:, keep])[0]]


def f(v, fmt):
    return "" if np.isnan(v) else fmt % v


with open("test/data/vgsales_expected.csv", "w", newline="") as fh:
    w = csv.writer(fh)
    w.writerow(["rank", "gbt", "linreg"])
    for i in np.nonzero(rank % 5 == 0)[0]:
        w.writerow([rank[i], "%.9g" % gbt[i], f(linreg[i], "%.17g")])
    for k in range(2):
        w.writerow([-1 - k, "%.9g" % gbt_new[k], f(lin_new[k], "%.17g")])

# warm_start: continued training from a booster, on trees.csv.
t = list(csv.DictReader(open("test/data/trees.csv")))
tid = np.array([int(r["id"]) for r in t])
tx = np.array([[float(r[c]) if r[c] != "" else np.nan
                for c in ("x1", "x2", "x3")] for r in t], dtype=np.float32)
ty = np.array([float(r["yr"]) for r in t])
first = tid <= 2000
b1 = xgb.train(dict(params, base_score=base_score(ty[first])),
               xgb.DMatrix(tx[first], label=ty[first], missing=np.nan),
               num_boost_round=10)
b2 = xgb.train(params, xgb.DMatrix(tx, label=ty, missing=np.nan),
               num_boost_round=10, xgb_model=b1)
warm = b2.predict(xgb.DMatrix(tx, missing=np.nan))
cold = b1.predict(xgb.DMatrix(tx, missing=np.nan))
with open("test/data/warm_expected.csv", "w", newline="") as fh:
    w = csv.writer(fh)
    w.writerow(["id", "first", "warm"])
    for i in range(len(t)):
        w.writerow([tid[i], "%.9g" % cold[i], "%.9g" % warm[i]])
