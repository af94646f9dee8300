package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// ldflagsVersion is set by a release build that names its version itself:
// -ldflags "-X main.ldflagsVersion=v1.2.3". Left empty, the version is the
// one Go records in the binary.
var ldflagsVersion string

// version is the version egressd reports: in `egressd version`, GET / and
// the start-up log.
var version = readBuild().Version

// build is what a binary knows of how it was built, so that an operator can
// tell which code runs without keeping track of deployments.
type build struct {
	// Version is the module version (v1.2.3, a pseudo-version for a build
	// of a commit, "(devel)" when Go recorded none).
	Version string
	// Revision is the commit built from, and Modified whether its working
	// tree had changes: empty when built outside a checkout.
	Revision  string
	Modified  bool
	GoVersion string
}

// readBuild reads the build information Go records in every binary
// (go build stamps the VCS revision when built inside a checkout).
func readBuild() build {
	b := build{Version: "(devel)", GoVersion: runtime.Version()}
	if info, ok := debug.ReadBuildInfo(); ok {
		if v := info.Main.Version; v != "" {
			b.Version = v
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				b.Revision = s.Value
			case "vcs.modified":
				b.Modified = s.Value == "true"
			}
		}
	}
	if ldflagsVersion != "" {
		b.Version = ldflagsVersion
	}
	return b
}

// String is the line `egressd version` prints.
func (b build) String() string {
	s := "egressd " + b.Version
	if b.Revision != "" {
		s += " revision " + b.Revision
		if b.Modified {
			s += " (modified)"
		}
	}
	return fmt.Sprintf("%s %s", s, b.GoVersion)
}

// buildInfoCollector is the egressd_build_info gauge: always 1, its labels
// say which build runs, so dashboards can join any series on a deploy.
func buildInfoCollector() prometheus.Collector {
	b := readBuild()
	revision := b.Revision
	if b.Modified {
		revision += "-modified"
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "egressd_build_info",
		Help:        "Which egressd build runs: version, VCS revision (-modified for a changed tree) and Go version; always 1.",
		ConstLabels: prometheus.Labels{"version": b.Version, "revision": revision, "go_version": b.GoVersion},
	})
	g.Set(1)
	return g
}
