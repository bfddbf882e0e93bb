#!/usr/bin/python3
"""Fit scikit-learn's GaussianMixture on a numeric CSV, the counterpart of
`lbtune gmm fit`, and print one JSON line with the same keys.

Usage: sklearn_gmm.py CSV KMIN KMAX COV N_INIT TOL MAX_ITER REG_COVAR SEED

For every k in [KMIN, KMAX] it fits GaussianMixture(k, covariance_type=COV,
n_init=N_INIT, tol=TOL, max_iter=MAX_ITER, reg_covar=REG_COVAR,
init_params="kmeans") and keeps the lowest BIC, timing the fits only (not
the CSV load). Exits 3 when scikit-learn is not installed.
"""
import json
import sys
import time

try:
    import numpy as np
    from sklearn.mixture import GaussianMixture
except ImportError as e:  # pragma: no cover
    print(f"sklearn missing: {e}", file=sys.stderr)
    sys.exit(3)


def blas_info():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [
        {k: p.get(k) for k in ("internal_api", "num_threads", "version", "architecture")}
        for p in threadpool_info()
    ]


def main():
    path, kmin, kmax, cov, n_init, tol, max_iter, reg, seed = sys.argv[1:10]
    x = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    n = x.shape[0]
    bics = {}
    best = None
    start, cpu_start = time.perf_counter(), time.process_time()
    for k in range(int(kmin), int(kmax) + 1):
        gm = GaussianMixture(
            n_components=k, covariance_type=cov, n_init=int(n_init), tol=float(tol),
            max_iter=int(max_iter), reg_covar=float(reg), init_params="kmeans",
            random_state=int(seed),
        ).fit(x)
        bic = gm.bic(x)
        bics[k] = bic
        if best is None or bic < best[1]:
            best = (k, bic, gm)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    k, bic, gm = best
    print(json.dumps({
        "k": k, "log_likelihood": float(gm.score(x)), "bic": float(bic),
        "iterations": int(gm.n_iter_), "converged": bool(gm.converged_),
        "seconds": seconds, "cpu_seconds": cpu, "samples": n, "bic_by_k": bics, "blas": blas_info(),
        "sklearn": __import__("sklearn").__version__,
    }))


if __name__ == "__main__":
    main()
