package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/lbtune/lbtune/agent/sim"
)

// Check reports what `lbtune run` would refuse or warn about on this host,
// beyond the file's own validity (Validate): problems (every one, joined)
// are what run refuses; warnings are what it runs with but an operator
// should fix.
//
//   - the store's directory must exist and be writable;
//   - a token file that exists must be a regular file holding a token of at
//     least 16 characters; a missing one is created by run (random, mode
//     0600), which Check reports as a warning;
//   - a token file readable by group or others is a warning;
//   - a listen address that is not loopback is a warning: reads (state,
//     decisions, metrics) are unauthenticated.
func (c *Config) Check() (warnings []string, err error) {
	var errs []error
	dir := filepath.Dir(c.Store.Path)
	if fi, serr := os.Stat(dir); serr != nil {
		errs = append(errs, fmt.Errorf("store.path: directory %s: %w", dir, serr))
	} else if !fi.IsDir() {
		errs = append(errs, fmt.Errorf("store.path: %s is not a directory", dir))
	} else if f, werr := os.CreateTemp(dir, ".lbtune-check-*"); werr != nil {
		errs = append(errs, fmt.Errorf("store.path: directory %s is not writable: %w", dir, werr))
	} else {
		f.Close()
		os.Remove(f.Name())
	}
	if tf := c.API.TokenFile; tf == "" {
		warnings = append(warnings, "api.token_file: empty: every mutating API call (mode, scale, nodes) is refused")
	} else if fi, serr := os.Stat(tf); errors.Is(serr, os.ErrNotExist) {
		warnings = append(warnings, fmt.Sprintf("api.token_file: %s does not exist: lbtune run creates it (random token, mode 0600)", tf))
	} else if serr != nil {
		errs = append(errs, fmt.Errorf("api.token_file: %w", serr))
	} else if !fi.Mode().IsRegular() {
		errs = append(errs, fmt.Errorf("api.token_file: %s is not a regular file", tf))
	} else {
		if _, terr := ReadToken(tf); terr != nil {
			errs = append(errs, fmt.Errorf("api.token_file: %w", terr))
		}
		if fi.Mode().Perm()&0o077 != 0 {
			warnings = append(warnings, fmt.Sprintf("api.token_file: %s is readable by group or others (mode %o): chmod 600 it", tf, fi.Mode().Perm()))
		}
	}
	if host, _, serr := net.SplitHostPort(c.API.Listen); serr == nil {
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			warnings = append(warnings, fmt.Sprintf("api.listen: %s is not a loopback address: anyone who reaches it can read state, decisions and metrics (only mutations need the token)", c.API.Listen))
		}
	}
	for i := range c.Pools {
		if err := checkTrace(&c.Pools[i]); err != nil {
			errs = append(errs, fmt.Errorf("pools[%d].sim.trace: %w", i, err))
		}
	}
	return warnings, errors.Join(errs...)
}

// checkTrace reads a simulated pool's trace, which Validate does not, and
// bounds its peak rate x scale by MaxSimRPS as run does.
func checkTrace(pl *Pool) error {
	if pl.Sim == nil || pl.Sim.Trace == "" {
		return nil
	}
	tr, err := sim.ReadTraceFile(pl.Sim.Trace)
	if err != nil {
		return err
	}
	if pl.Sim.From >= tr.Duration() {
		return fmt.Errorf("from %s skips the whole trace (%s long)", pl.Sim.From, tr.Duration())
	}
	for _, r := range tr.Rates {
		if r*pl.Sim.Scale > MaxSimRPS {
			return fmt.Errorf("peak rate %v req/s x scale %v = %v req/s: want at most %v simulated req/s per pool", r, pl.Sim.Scale, r*pl.Sim.Scale, float64(MaxSimRPS))
		}
		if r*pl.Sim.Scale*pl.Sim.Speedup > MaxSimWallRPS {
			return fmt.Errorf("peak rate %v req/s x scale %v x speedup %v: want at most %v req/s of wall-clock time", r, pl.Sim.Scale, pl.Sim.Speedup, float64(MaxSimWallRPS))
		}
	}
	return nil
}
