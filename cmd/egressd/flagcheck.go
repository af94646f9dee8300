package main

import (
	"flag"
	"net/url"
	"time"
)

// positiveFlags are the numeric flags whose zero or negative value means
// nothing. The packages behind them read zero as "the default", which the
// help never said: egressd refuses the value instead of guessing.
var positiveFlags = []string{
	"max-body-bytes", "max-invocations", "max-proofs", "max-delegation-depth",
	"max-bytes-per-event", "max-validation-steps", "max-blocks", "max-block-bytes",
	"max-nesting", "max-inflight-bytes", "max-connections",
	"worker-concurrency", "worker-batch", "worker-max-tries", "stripe-rate", "stripe-timeout",
	"limit",
}

// checkFlagValues refuses, before a command runs, a flag value the flag
// package accepts but the command cannot use: zero or negative counts, any
// negative duration (a timeout or an age below zero is a typo), a Stripe URL
// that is not one.
func checkFlagValues(fs *flag.FlagSet) error {
	for _, name := range positiveFlags {
		f := fs.Lookup(name)
		if f == nil {
			continue
		}
		g, ok := f.Value.(flag.Getter)
		if !ok {
			continue
		}
		var positive bool
		switch v := g.Get().(type) {
		case int:
			positive = v > 0
		case int64:
			positive = v > 0
		case float64:
			positive = v > 0
		case time.Duration:
			positive = v > 0
		default:
			continue
		}
		if !positive {
			return flagError(fs, "--%s %s: must be greater than 0 (default %s)", name, f.Value, f.DefValue)
		}
	}
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if g, ok := f.Value.(flag.Getter); ok && err == nil {
			if d, ok := g.Get().(time.Duration); ok && d < 0 {
				err = flagError(fs, "--%s %s: must not be negative", f.Name, d)
			}
		}
	})
	if err != nil {
		return err
	}
	if f := fs.Lookup("stripe-url"); f != nil && f.Value.String() != "" {
		u, perr := url.Parse(f.Value.String())
		if perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return flagError(fs, "--stripe-url %q: expected an http or https URL such as http://127.0.0.1:12111", f.Value.String())
		}
	}
	return nil
}
