// Package deploy holds the deployment examples (systemd units, an IAM
// policy, Prometheus alerts, a Grafana dashboard) and the tests that keep
// them true to the code: every flag a unit passes exists, the policy grants
// exactly the AWS actions the code calls, every metric a rule or a panel
// queries is one egressd exports.
package deploy

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
)

// repo is the repository's root, seen from this package's directory.
const repo = ".."

// binary builds egressd once for the tests that run it.
var binary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "egressd-deploy-")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "egressd")
	if out, err := exec.Command("go", "build", "-o", path, "../cmd/egressd").CombinedOutput(); err != nil {
		return "", &buildError{string(out)}
	}
	return path, nil
})

type buildError struct{ out string }

func (e *buildError) Error() string { return "go build failed:\n" + e.out }

func egressd(t *testing.T) string {
	t.Helper()
	path, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	return path
}

const installedBinary = "/usr/local/bin/egressd"

// TestSystemdUnits runs each unit's egressd command line with --help added:
// a subcommand or a flag that does not exist fails it. Where
// systemd-analyze is installed, it also verifies the units themselves.
func TestSystemdUnits(t *testing.T) {
	units, err := filepath.Glob("systemd/*.service")
	if err != nil || len(units) == 0 {
		t.Fatalf("no units in systemd/: %v", err)
	}
	bin := egressd(t)
	for _, unit := range units {
		text, err := os.ReadFile(unit)
		if err != nil {
			t.Fatal(err)
		}
		execs := 0
		for _, line := range strings.Split(string(text), "\n") {
			value, ok := strings.CutPrefix(line, "ExecStart=")
			if !ok {
				continue
			}
			execs++
			args, ok := egressdArgs(value)
			if !ok {
				t.Errorf("%s: ExecStart does not run %s: %s", unit, installedBinary, value)
				continue
			}
			var words []string
			for _, a := range args {
				if strings.HasPrefix(a, "-") {
					break
				}
				words = append(words, a)
			}
			cmd := exec.Command(bin, append(args, "--help")...)
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Errorf("%s: egressd %s --help: %v\n%s", unit, strings.Join(args, " "), err, out)
				continue
			}
			// A misspelt subcommand falls through to its parent's help.
			if usage := "egressd " + strings.Join(words, " "); !strings.Contains(string(out), usage) {
				t.Errorf("%s: egressd %s --help does not show the usage of %q:\n%s", unit, strings.Join(args, " "), usage, out)
			}
		}
		if execs == 0 {
			t.Errorf("%s has no ExecStart", unit)
		}
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze is not installed: the units' syntax is not verified")
		return
	}
	// systemd-analyze checks that ExecStart's binary exists: point the
	// units at the one just built.
	dir := t.TempDir()
	all, _ := filepath.Glob("systemd/*")
	var names []string
	for _, unit := range all {
		text, err := os.ReadFile(unit)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(unit)
		text = bytes.ReplaceAll(text, []byte(installedBinary), []byte(bin))
		if err := os.WriteFile(filepath.Join(dir, name), text, 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, "./"+name)
	}
	cmd := exec.Command(analyze, append([]string{"verify", "--man=no"}, names...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	// Unknown keys and bad values are warnings, with exit status 0.
	for _, name := range names {
		if bytes.Contains(out, []byte(strings.TrimPrefix(name, "./"))) {
			t.Errorf("systemd-analyze verify warns about %s:\n%s", name, out)
		}
	}
}

// egressdArgs returns the arguments ExecStart gives egressd, directly or
// through `/bin/sh -c '... exec egressd ...'`, with quotes removed.
func egressdArgs(execStart string) ([]string, bool) {
	line := strings.TrimLeft(strings.TrimSpace(execStart), "+-@!:")
	if rest, ok := strings.CutPrefix(line, "/bin/sh -c "); ok {
		line = strings.Trim(rest, "'")
	}
	fields := splitQuoted(line)
	for i, f := range fields {
		if f == installedBinary {
			return fields[i+1:], true
		}
	}
	return nil, false
}

// splitQuoted splits a command line at spaces outside double quotes, and
// drops the quotes.
func splitQuoted(line string) []string {
	var (
		fields []string
		field  strings.Builder
		quoted bool
	)
	for _, r := range line + " " {
		switch {
		case r == '"':
			quoted = !quoted
		case r == ' ' && !quoted:
			if field.Len() > 0 {
				fields = append(fields, field.String())
				field.Reset()
			}
		default:
			field.WriteRune(r)
		}
	}
	return fields
}

// sdkCall finds the AWS SDK operations the code calls, by their input type
// (every call takes one) or their paginator.
var (
	sdkCall      = regexp.MustCompile(`\b(s3|sqs|dynamodb)\.(?:New([A-Z]\w*)Paginator|([A-Z]\w*)Input)\b`)
	transactItem = regexp.MustCompile(`\btypes\.(Put|Update|Delete|ConditionCheck)\{`)
)

// iamAction is the IAM action that allows an SDK operation, where it is
// not service:Operation.
var iamAction = map[string]string{
	"s3:HeadBucket":                    "s3:ListBucket",
	"s3:HeadObject":                    "s3:GetObject",
	"sqs:SendMessageBatch":             "sqs:SendMessage",
	"sqs:DeleteMessageBatch":           "sqs:DeleteMessage",
	"sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
	// A transaction is allowed by the actions of its items (below): IAM has
	// no dynamodb:TransactWriteItems action.
	"dynamodb:TransactWriteItems": "",
	"dynamodb:TransactGetItems":   "",
}

// transactItemAction is the action each kind of transaction item needs.
var transactItemAction = map[string]string{
	"Put": "dynamodb:PutItem", "Update": "dynamodb:UpdateItem",
	"Delete": "dynamodb:DeleteItem", "ConditionCheck": "dynamodb:ConditionCheckItem",
}

// initOnly are the files only `egressd aws init` runs: their actions go in
// the policy's AwsInit statements.
func initOnly(path string) bool {
	return strings.HasPrefix(path, "internal/awsinit/") || path == "billing/dynamodb/migrate.go"
}

// TestIAMPolicy compares aws/iam-policy.json with the AWS calls in the
// code: the statements whose Sid starts with AwsInit grant what only `aws
// init` needs, the others exactly what serve, worker and the operator
// commands call; nothing more, nothing less.
func TestIAMPolicy(t *testing.T) {
	runtime, init := map[string]bool{}, map[string]bool{}
	err := walkGo(t, func(path string, src []byte) {
		calls := runtime
		if initOnly(path) {
			calls = init
		}
		for _, m := range sdkCall.FindAllSubmatch(src, -1) {
			op := string(m[1]) + ":" + string(m[2]) + string(m[3])
			action, mapped := iamAction[op]
			if !mapped {
				action = op
			}
			if action != "" {
				calls[action] = true
			}
		}
		if bytes.Contains(src, []byte("dynamodb.TransactWriteItemsInput")) || bytes.Contains(src, []byte("types.TransactWriteItem{")) {
			for _, m := range transactItem.FindAllSubmatch(src, -1) {
				calls[transactItemAction[string(m[1])]] = true
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	for a := range runtime {
		delete(init, a) // the runtime statements grant it already
	}
	if len(runtime) < 10 {
		t.Fatalf("found only %v in the code: has the pattern stopped matching?", keys(runtime))
	}

	var policy struct {
		Statement []struct {
			Sid      string
			Effect   string
			Action   []string
			Resource []string
		}
	}
	text, err := os.ReadFile("aws/iam-policy.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(text, &policy); err != nil {
		t.Fatalf("aws/iam-policy.json: %v", err)
	}
	granted, grantedInit := map[string]bool{}, map[string]bool{}
	for _, s := range policy.Statement {
		if s.Effect != "Allow" || len(s.Resource) == 0 {
			t.Errorf("statement %s: want Effect Allow and its resources", s.Sid)
		}
		for _, a := range s.Action {
			if strings.HasPrefix(s.Sid, "AwsInit") {
				grantedInit[a] = true
			} else {
				granted[a] = true
			}
		}
	}
	compare := func(what string, code, policy map[string]bool) {
		for _, a := range keys(code) {
			if !policy[a] {
				t.Errorf("%s: the code calls %s, the policy does not grant it", what, a)
			}
		}
		for _, a := range keys(policy) {
			if !code[a] {
				t.Errorf("%s: the policy grants %s, which the code never calls", what, a)
			}
		}
	}
	compare("serve, worker and commands", runtime, granted)
	compare("aws init", init, grantedInit)
}

// walkGo calls fn with every non-test Go file of the shipped code, by its
// path from the repository's root. Test helper packages (names ending in
// "test", such as awstest) are left out.
func walkGo(t *testing.T, fn func(path string, src []byte)) error {
	t.Helper()
	return filepath.WalkDir(repo, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(repo, path)
		if d.IsDir() {
			name := d.Name()
			if rel != "." && (strings.HasPrefix(name, ".") || name == "node_modules" || name == "testdata" || name == "deploy" || strings.HasSuffix(name, "test")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fn(filepath.ToSlash(rel), src)
		return nil
	})
}

var (
	metricDef  = regexp.MustCompile(`Name:\s*"(egressd_\w+)"`)
	metricUse  = regexp.MustCompile(`\begressd_[a-z0-9_]+\b`)
	histSuffix = regexp.MustCompile(`_(bucket|sum|count)$`)
)

// exported is every metric name the code defines.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	if err := walkGo(t, func(_ string, src []byte) {
		for _, m := range metricDef.FindAllSubmatch(src, -1) {
			names[string(m[1])] = true
		}
	}); err != nil {
		t.Fatal(err)
	}
	if !names["egressd_queue_depth"] {
		t.Fatalf("found %v: has the pattern stopped matching?", keys(names))
	}
	return names
}

// checkMetrics reports each metric in exprs the code does not define, and
// returns the ones used.
func checkMetrics(t *testing.T, where string, exprs []string, names map[string]bool) map[string]bool {
	t.Helper()
	used := map[string]bool{}
	for _, e := range exprs {
		for _, m := range metricUse.FindAllString(e, -1) {
			base := m
			if !names[m] {
				base = histSuffix.ReplaceAllString(m, "")
			}
			if !names[base] {
				t.Errorf("%s queries %s, which egressd does not export (in %q)", where, m, e)
			}
			used[base] = true
		}
	}
	return used
}

// TestAlertRules checks every expression of prometheus/alerts.yml queries
// metrics egressd exports, and each rule is whole; with promtool on the PATH
// (or in $PROMTOOL) it also runs `promtool check rules`.
func TestAlertRules(t *testing.T) {
	text, err := os.ReadFile("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	// The file's own layout: `- alert: NAME`, then `expr:` on one line or
	// as a block (`expr: |` and the lines indented under it).
	type rule struct{ name, expr string }
	var rules []*rule
	lines := strings.Split(string(text), "\n")
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSpace(lines[i])
		if name, ok := strings.CutPrefix(line, "- alert: "); ok {
			rules = append(rules, &rule{name: name})
			continue
		}
		expr, ok := strings.CutPrefix(line, "expr: ")
		if !ok || len(rules) == 0 {
			continue
		}
		if expr == "|" {
			indent := len(lines[i]) - len(strings.TrimLeft(lines[i], " "))
			expr = ""
			for i+1 < len(lines) && len(lines[i+1])-len(strings.TrimLeft(lines[i+1], " ")) > indent {
				i++
				expr += strings.TrimSpace(lines[i]) + " "
			}
		}
		rules[len(rules)-1].expr = strings.TrimSpace(expr)
	}
	if len(rules) < 5 {
		t.Fatalf("found %d rules in prometheus/alerts.yml", len(rules))
	}
	names := exported(t)
	var exprs []string
	for _, r := range rules {
		if r.expr == "" {
			t.Errorf("rule %s has no expr", r.name)
		}
		exprs = append(exprs, r.expr)
	}
	used := checkMetrics(t, "prometheus/alerts.yml", exprs, names)
	// What the issue asks to be alerted on.
	for _, m := range []string{"egressd_billing_lag_seconds", "egressd_billing_events_total", "egressd_stripe_rejections_total",
		"egressd_requests_total", "egressd_queue_depth", "egressd_queue_dead_letters"} {
		if !used[m] {
			t.Errorf("no alert on %s", m)
		}
	}

	promtool := os.Getenv("PROMTOOL")
	if promtool == "" {
		promtool, _ = exec.LookPath("promtool")
	}
	if promtool == "" {
		t.Log("promtool is not installed (nor $PROMTOOL set): the rules' PromQL is not checked")
		return
	}
	if out, err := exec.Command(promtool, "check", "rules", "prometheus/alerts.yml").CombinedOutput(); err != nil {
		t.Errorf("promtool check rules: %v\n%s", err, out)
	}
}

// TestGrafanaDashboard checks grafana/egressd-dashboard.json is a dashboard
// whose every query is of metrics egressd exports, and that it shows all of
// them.
func TestGrafanaDashboard(t *testing.T) {
	text, err := os.ReadFile("grafana/egressd-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string
		UID    string
		Panels []struct {
			ID      int
			Title   string
			Type    string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(text, &dash); err != nil {
		t.Fatalf("grafana/egressd-dashboard.json: %v", err)
	}
	if dash.Title == "" || dash.UID == "" || len(dash.Panels) == 0 {
		t.Fatalf("dashboard without title, uid or panels")
	}
	ids := map[int]bool{}
	var exprs []string
	for _, p := range dash.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		if p.Title == "" || p.Type == "" || len(p.Targets) == 0 {
			t.Errorf("panel %d (%q) lacks a title, a type or a query", p.ID, p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	names := exported(t)
	used := checkMetrics(t, "grafana/egressd-dashboard.json", exprs, names)
	for _, m := range keys(names) {
		if !used[m] && !notCharted[m] {
			t.Errorf("egressd exports %s and the dashboard does not show it", m)
		}
	}
}

// notCharted are the exported names a dashboard has no use for.
var notCharted = map[string]bool{}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return slices.Clip(out)
}
