#!/usr/bin/python3
"""Generates the ML test fixtures and their expected values, once.

Run with Debian's python3-sklearn (scikit-learn 1.2) and numpy:
    /usr/bin/python3 test/data/make_fixtures.py
The CSVs it writes are committed, so the test suite needs no scikit-learn.

  logit.csv            2000 rows: id, grp, x1..x4 (scales 1, 1e-6, 1e9, 1e3),
                       flag (boolean feature), y (boolean label)
  logit_expected.csv   coefficients of LogisticRegression(penalty=None) and of
                       l2 with C = 1/(n*lambda) on standardized features,
                       lambda = 0.01 (reported on the original scale)
  logit_raw_expected.csv  l2 with standardize false: sklearn on raw features
                       (x1, x4 only), C = 1/(n*lambda), lambda = 0.01
  logit_proba.csv      id, sklearn predict_proba of the unpenalized model
  linear.csv           1000 rows: id, a, b, c, t
  linear_expected.csv  numpy least squares coefficients and R^2
  eval_expected.csv    model, metric, value: scikit-learn's metrics of the
                       unpenalized logistic model on logit.csv (accuracy,
                       precision, recall, f1, roc_auc, average precision,
                       log_loss, confusion matrix) and of the least squares
                       model on linear.csv (rmse, mae, r2)
  logit_weighted_expected.csv  fit, feature, coefficient: unpenalized fits
                       with class_weight 'balanced', class_weight
                       {false: 1, true: 3}, and sample_weight 1 + id % 3
  linear_l1_expected.csv  fit, feature, coefficient: scikit-learn's Lasso
                       (alpha 0.3) and ElasticNet (l1 0.05, l2 0.02) on
                       standardized linear.csv features, on the original scale;
                       and l1-penalized logistic regression (saga, C = 1/(n*0.05))
                       on standardized logit.csv features ("logit_l1")
"""
import csv
import os
import warnings

import numpy as np
from sklearn import metrics
from sklearn.linear_model import ElasticNet, Lasso, LogisticRegression
from sklearn.preprocessing import StandardScaler

# newton-cg stops on rounding noise near the optimum at this tolerance
warnings.simplefilter("ignore")
here = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(20240501)


def write(name, header, rows):
    with open(os.path.join(here, name), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for r in rows:
            w.writerow(r)


def fmt(v):
    return repr(float(v))


def fit_standardized(X, y, C=None, class_weight=None, sample_weight=None):
    """Fits on standardized features, returns (b0, beta) on the original scale."""
    sc = StandardScaler().fit(X)
    Z = sc.transform(X)
    if C is None:
        m = LogisticRegression(penalty=None, solver="newton-cg", tol=1e-10,
                               max_iter=10000, class_weight=class_weight)
    else:
        m = LogisticRegression(C=C, solver="newton-cg", tol=1e-10,
                               max_iter=10000, class_weight=class_weight)
    m.fit(Z, y, sample_weight=sample_weight)
    beta = m.coef_[0] / sc.scale_
    b0 = m.intercept_[0] - np.sum(m.coef_[0] * sc.mean_ / sc.scale_)
    return b0, beta, m, sc


# --- logistic ---------------------------------------------------------------
n = 2000
x1 = rng.normal(0.0, 1.0, n)
x2 = rng.normal(0.0, 1.0, n) * 1e-6
x3 = 1e9 + rng.normal(0.0, 1.0, n) * 1e9 * 0.1
x4 = rng.normal(5.0, 2.0, n) * 1e3
flag = rng.random(n) < 0.3
eta = (-0.5 + 1.2 * x1 - 0.8 * x2 / 1e-6 + 0.6 * (x3 - 1e9) / 1e8
       + 0.3 * (x4 - 5e3) / 2e3 + 0.7 * flag)
y = rng.random(n) < 1.0 / (1.0 + np.exp(-eta))
grp = np.where(np.arange(n) % 2 == 0, "A", "B")
X = np.column_stack([x1, x2, x3, x4, flag.astype(float)])
names = ["x1", "x2", "x3", "x4", "flag"]

write("logit.csv", ["id", "grp", "x1", "x2", "x3", "x4", "flag", "y"],
      [[i + 1, grp[i], fmt(x1[i]), fmt(x2[i]), fmt(x3[i]), fmt(x4[i]),
        "t" if flag[i] else "f", "t" if y[i] else "f"] for i in range(n)])

lam = 0.01
b0, beta, m_none, sc = fit_standardized(X, y)
b0r, betar, _, _ = fit_standardized(X, y, C=1.0 / (n * lam))
rows = [["none", "(intercept)", fmt(b0)]]
rows += [["none", names[j], fmt(beta[j])] for j in range(5)]
rows += [["l2", "(intercept)", fmt(b0r)]]
rows += [["l2", names[j], fmt(betar[j])] for j in range(5)]
write("logit_expected.csv", ["fit", "feature", "coefficient"], rows)

proba = m_none.predict_proba(sc.transform(X))[:, 1]
write("logit_proba.csv", ["id", "proba"],
      [[i + 1, fmt(proba[i])] for i in range(n)])

# raw-scale l2 (standardize false) on the two well-scaled features
Xr = np.column_stack([x1, x4 / 1e3])
mr = LogisticRegression(C=1.0 / (n * lam), solver="newton-cg", tol=1e-10,
                        max_iter=10000).fit(Xr, y)
write("logit_raw_expected.csv", ["feature", "coefficient"],
      [["(intercept)", fmt(mr.intercept_[0])], ["x1", fmt(mr.coef_[0][0])],
       ["x4k", fmt(mr.coef_[0][1])]])

# --- linear -----------------------------------------------------------------
n = 1000
a = rng.normal(0.0, 1.0, n)
b = rng.normal(10.0, 3.0, n)
c = rng.integers(0, 100, n).astype(float)
t = 3.0 + 2.0 * a - 0.5 * b + 0.01 * c + rng.normal(0.0, 0.5, n)
write("linear.csv", ["id", "a", "b", "c", "t"],
      [[i + 1, fmt(a[i]), fmt(b[i]), int(c[i]), fmt(t[i])] for i in range(n)])
A = np.column_stack([np.ones(n), a, b, c])
coef, *_ = np.linalg.lstsq(A, t, rcond=None)
resid = t - A @ coef
r2 = 1.0 - resid @ resid / np.sum((t - t.mean()) ** 2)
write("linear_expected.csv", ["feature", "coefficient"],
      [["(intercept)", fmt(coef[0])], ["a", fmt(coef[1])], ["b", fmt(coef[2])],
       ["c", fmt(coef[3])], ["r2", fmt(r2)]])

# --- evaluation metrics (no random draws: the data above stays the same) ----
rows = []
pred = proba >= 0.5
tn, fp, fn, tp = metrics.confusion_matrix(y, pred).ravel()
for name, v in [("accuracy", metrics.accuracy_score(y, pred)),
                ("precision", metrics.precision_score(y, pred)),
                ("recall", metrics.recall_score(y, pred)),
                ("f1", metrics.f1_score(y, pred)),
                ("roc_auc", metrics.roc_auc_score(y, proba)),
                ("pr_auc", metrics.average_precision_score(y, proba)),
                ("log_loss", metrics.log_loss(y, proba)),
                ("tp", tp), ("fp", fp), ("tn", tn), ("fn", fn)]:
    rows.append(["churn", name, fmt(v)])
tpred = A @ coef
for name, v in [("rmse", np.sqrt(metrics.mean_squared_error(t, tpred))),
                ("mae", metrics.mean_absolute_error(t, tpred)),
                ("r2", metrics.r2_score(t, tpred))]:
    rows.append(["price", name, fmt(v)])
write("eval_expected.csv", ["model", "metric", "value"], rows)

# --- class weights and row weights on the logistic data --------------------
n = 2000
ids = np.arange(1, n + 1)
rows = []
for fit, kw in [("balanced", {"class_weight": "balanced"}),
                ("object", {"class_weight": {False: 1.0, True: 3.0}}),
                ("weight", {"sample_weight": 1.0 + ids % 3})]:
    b0w, betaw, _, _ = fit_standardized(X, y, **kw)
    rows.append([fit, "(intercept)", fmt(b0w)])
    rows += [[fit, names[j], fmt(betaw[j])] for j in range(5)]
write("logit_weighted_expected.csv", ["fit", "feature", "coefficient"], rows)

# --- lasso and elastic net on the linear data (no random draws) ------------
Xl = np.column_stack([a, b, c])
scl = StandardScaler().fit(Xl)
Zl = scl.transform(Xl)
rows = []
for fit, m in [("lasso", Lasso(alpha=0.3, tol=1e-14, max_iter=1000000)),
               ("enet", ElasticNet(alpha=0.07, l1_ratio=0.05 / 0.07, tol=1e-14,
                                   max_iter=1000000))]:
    m.fit(Zl, t)
    beta = m.coef_ / scl.scale_
    b0 = m.intercept_ - np.sum(m.coef_ * scl.mean_ / scl.scale_)
    rows.append([fit, "(intercept)", fmt(b0)])
    rows += [[fit, nm, fmt(beta[j])] for j, nm in enumerate(["a", "b", "c"])]
write("linear_l1_expected.csv", ["fit", "feature", "coefficient"], rows)

# --- l1-penalized logistic regression (no random draws) ---------------------
n = 2000
scx = StandardScaler().fit(X)
ml1 = LogisticRegression(penalty="l1", C=1.0 / (n * 0.05), solver="saga",
                         tol=1e-13, max_iter=1000000).fit(scx.transform(X), y)
beta = ml1.coef_[0] / scx.scale_
b0 = ml1.intercept_[0] - np.sum(ml1.coef_[0] * scx.mean_ / scx.scale_)
rows.append(["logit_l1", "(intercept)", fmt(b0)])
rows += [["logit_l1", names[j], fmt(beta[j])] for j in range(5)]
write("linear_l1_expected.csv", ["fit", "feature", "coefficient"], rows)
