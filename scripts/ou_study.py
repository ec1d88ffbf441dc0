"""How much price data the OU drift MLE needs (docs/calibration.md, "How much data").

Simulates the drift filter's model (dX = mu dt + sigma dW, dmu = -kappa mu dt + sigma_mu dB,
Euler steps of 1 s, sampled every 10 s) at a given signal-to-noise ratio, fits it with
``flowmm.calibrate.fit_ou`` (prices only) and prints, per length of data, the median and the
10-90 % range of the estimates relative to the truth, and how often both kappa_mu and sigma_mu
land within 15 % and within 25 %.

    python scripts/ou_study.py                 # HYPE-like: kappa 0.02, sigma_mu 0.005, sigma 0.5
    python scripts/ou_study.py --sigma-mu 0.01 --days 1,7,30 --reps 20
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from flowmm.calibrate import fit_ou, simulate_ou_prices


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kappa", type=float, default=0.02, help="1/s (seed range 0.005-0.05)")
    ap.add_argument("--sigma-mu", type=float, default=0.005, help="(bps/s)/sqrt(s) (seed range 0.001-0.01)")
    ap.add_argument("--sigma", type=float, default=0.5, help="price vol, bps/sqrt(s)")
    ap.add_argument("--dt", type=float, default=10.0, help="price grid, s")
    ap.add_argument("--days", default="1,3,7,14,30", help="lengths of data, days")
    ap.add_argument("--reps", type=int, default=16, help="independent simulations per length")
    a = ap.parse_args()
    drift_sd = a.sigma_mu / math.sqrt(2 * a.kappa)
    snr = drift_sd / (a.sigma * math.sqrt(a.kappa))  # drift move over 1/kappa vs diffusion over 1/kappa
    print(
        f"kappa {a.kappa} /s, sigma_mu {a.sigma_mu}, sigma {a.sigma} bps/sqrt(s), grid {a.dt:g} s: "
        f"drift sd {drift_sd:.4f} bps/s, SNR {snr:.3f}"
    )
    head = ("days", "kappa med [p10, p90]", "sigma_mu med [p10, p90]", "<15%", "<25%", "s/fit")
    print(" ".join(h.rjust(w) for h, w in zip(head, (5, 26, 26, 6, 6, 6))))
    for days in (float(d) for d in a.days.split(",")):
        n = int(days * 86400 / a.dt)
        rk, rs = [], []
        t0 = time.perf_counter()
        for rep in range(a.reps):
            p = simulate_ou_prices(n, a.dt, a.kappa, a.sigma_mu, a.sigma, seed=1000 + rep, substeps=int(a.dt))
            f = fit_ou(p, a.dt)
            rk.append(f.kappa_mu / a.kappa)
            rs.append(f.sigma_mu / a.sigma_mu)
        per = (time.perf_counter() - t0) / a.reps
        rk, rs = np.array(rk), np.array(rs)
        err = np.maximum(abs(rk - 1), abs(rs - 1))

        def q(r):
            return f"{np.median(r):5.2f} [{np.quantile(r, 0.1):5.2f}, {np.quantile(r, 0.9):5.2f}]"

        within = f"{np.mean(err < 0.15):6.0%} {np.mean(err < 0.25):6.0%}"
        print(f"{days:5g} {q(rk):>26} {q(rs):>26} {within} {per:6.1f}")


if __name__ == "__main__":
    main()
