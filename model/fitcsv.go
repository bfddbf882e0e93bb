package model

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"syscall"
	"time"
)

// CSVFit is the summary of FitCSV (`lbtune gmm fit --json`).
type CSVFit struct {
	K             int             `json:"k"`
	LogLikelihood float64         `json:"log_likelihood"`
	BIC           float64         `json:"bic"`
	AIC           float64         `json:"aic"`
	Iterations    int             `json:"iterations"`
	Converged     bool            `json:"converged"`
	Seconds       float64         `json:"seconds"`
	CPUSeconds    float64         `json:"cpu_seconds"`
	Samples       int             `json:"samples"`
	Dims          int             `json:"dims"`
	Cov           string          `json:"covariance_type"`
	BICByK        map[int]float64 `json:"bic_by_k"`
	Threads       int             `json:"threads"`
}

// FitCSV reads the numeric CSV at path (ReadCSV) and fits a mixture for
// every k in kmin..kmax with cfg, seeded with seed, keeping the lowest BIC
// (SelectK). It returns the summary of the chosen fit, with the wall and
// CPU time of the fitting, and the whole selection.
func FitCSV(ctx context.Context, path string, kmin, kmax int, cfg FitConfig, seed uint64) (CSVFit, Selection, error) {
	f, err := os.Open(path)
	if err != nil {
		return CSVFit{}, Selection{}, err
	}
	_, x, err := ReadCSV(f)
	f.Close()
	if err != nil {
		return CSVFit{}, Selection{}, fmt.Errorf("read %s: %w", path, err)
	}
	start, cpuStart := time.Now(), cpuSeconds()
	sel, err := SelectK(ctx, x, kmin, kmax, cfg, rand.NewPCG(seed, seed), nil)
	if err != nil {
		return CSVFit{}, Selection{}, err
	}
	elapsed, cpu := time.Since(start).Seconds(), cpuSeconds()-cpuStart
	n, d := x.Dims()
	g := sel.Best.GMM
	return CSVFit{
		K: sel.K, LogLikelihood: sel.Best.LogLikelihood, BIC: sel.Best.BIC, AIC: sel.Best.AIC,
		Iterations: g.Iterations, Converged: g.Converged, Seconds: elapsed, CPUSeconds: cpu, Samples: n, Dims: d,
		Cov: string(cfg.Cov), BICByK: sel.BICs(), Threads: fitThreads(cfg.Threads),
	}, sel, nil
}

// fitThreads is the thread count a fit used: n, or GOMAXPROCS when n <= 0.
func fitThreads(n int) int {
	if n > 0 {
		return n
	}
	return runtime.GOMAXPROCS(0)
}

// cpuSeconds is the user+system CPU time of this process so far; FitCSV
// reports it beside wall time because the machine may be shared.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
