package rules

import (
	"os"
	"path/filepath"
	"syscall"

	"gopkg.in/yaml.v3"
)

// TestFile is a file of rule unit tests, run by `amx test`: notifications,
// recorded or written inline, and the Plan each must produce under a
// configuration.
type TestFile struct {
	File string
	// Config is the configuration under test, relative to the test file.
	Config string
	Tests  []*Test
}

// Test is one unit test: a notification and what it must lead to.
type Test struct {
	Name string
	Line int
	// Payload is a recorded notification (a path relative to the test
	// file); when empty, Inline is the notification.
	Payload string
	Inline  *Notification
	// Running are processes already live when the notification arrives.
	Running []Running
	// State seeds the scratch state the test's notification meets.
	State  TestState
	Expect Expect
}

// TestState is the state a test starts from: routes' script values, and
// actions still in their cooldown.
type TestState struct {
	// Values are script values by route and key: numbers or strings.
	Values map[string]map[string]any
	// Cooldown are actions that started recently for a key, within their
	// cooldown.
	Cooldown []Running
}

// Notification is a notification written in a test file.
type Notification struct {
	Receiver          string
	Status            string // default: firing when any alert fires
	GroupKey          string
	GroupLabels       map[string]string
	CommonLabels      map[string]string // default: the labels all alerts share
	CommonAnnotations map[string]string
	ExternalURL       string
	TruncatedAlerts   int
	Alerts            []TestAlert
}

// TestAlert is an alert written in a test file.
type TestAlert struct {
	Status       string // default: firing
	Labels       map[string]string
	Annotations  map[string]string
	Fingerprint  string // default: Alertmanager's fingerprint of Labels
	GeneratorURL string
	StartsAt     string // RFC 3339; default a fixed time
	EndsAt       string
}

// Running is a process already live: started by a route or a command
// ("commands[0]") for an alert. It counts for the max of the actions of its
// rule and fingerprint, or only of those with its Cmd and Args when given,
// as the runner counts per command line.
type Running struct {
	Route       string
	Fingerprint string
	// Key is what max counts per, when the rule sets by or exec{key=}.
	Key     string
	Cmd     string
	Args    []string
	HasArgs bool
	Line    int
}

// Expect is what a test expects of the Plan.
type Expect struct {
	Exec []ExpectExec
	// ExecExact fails the test on actions not listed in Exec; default true.
	ExecExact bool
	// Skip lists skips that must be in the Plan; others may be too.
	Skip []ExpectSkip
	// Signal lists every signal the live processes (Running) must get.
	Signal []ExpectSignal
	// Error lists the routes whose script must fail; any other failure
	// fails the test.
	Error []ExpectError
}

// ExpectExec is an action the Plan must hold.
type ExpectExec struct {
	Route string
	Cmd   string
	// Args must equal the action's when given (HasArgs).
	Args    []string
	HasArgs bool
	// Env must be a subset of the action's environment.
	Env         map[string]string
	Fingerprint string
	Line        int
}

// ExpectSkip is a skip the Plan must hold; an empty Reason matches any.
type ExpectSkip struct {
	Route  string
	Reason string
	Line   int
}

// ExpectSignal is a signal a live process must get on resolve.
type ExpectSignal struct {
	Fingerprint string
	Signal      syscall.Signal
	Line        int
}

// ExpectError is a route whose script must fail; Message must be part of
// the error text.
type ExpectError struct {
	Route   string
	Message string
	Line    int
}

// LoadTestFile reads a test file. Every problem is reported at once, each
// as file:line:col: field: message. Paths in it are made relative to the
// working directory.
func LoadTestFile(file string) (*TestFile, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, syntaxError(file, err)
	}
	d := &decoder{file: file}
	tf := &TestFile{File: file}
	dir := filepath.Dir(file)
	var root *yaml.Node
	if len(doc.Content) > 0 {
		root = doc.Content[0]
	}
	d.mapping(root, "", map[string]field{
		"config": func(n *yaml.Node, p string) { d.str(n, p, &tf.Config) },
		"tests": func(n *yaml.Node, p string) {
			d.sequence(n, p, func(n *yaml.Node, p string) { tf.Tests = append(tf.Tests, d.test(n, p, dir)) })
		},
	})
	if tf.Config == "" {
		d.errorf(root, "config", "missing: the configuration to test, relative to this file")
	} else {
		tf.Config = relativeTo(dir, tf.Config)
	}
	if len(tf.Tests) == 0 {
		d.errorf(root, "tests", "missing: no tests")
	}
	return tf, d.err()
}

func relativeTo(dir, path string) string {
	if filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(dir, path)
}

// running decodes a list of processes (or starts) of routes and commands.
func (d *decoder) running(n *yaml.Node, path string) []Running {
	var out []Running
	d.sequence(n, path, func(n *yaml.Node, p string) {
		r := Running{Line: resolve(n).Line}
		d.mapping(n, p, map[string]field{
			"route":       func(n *yaml.Node, p string) { d.str(n, p, &r.Route) },
			"fingerprint": func(n *yaml.Node, p string) { d.str(n, p, &r.Fingerprint) },
			"key":         func(n *yaml.Node, p string) { d.str(n, p, &r.Key) },
			"cmd":         func(n *yaml.Node, p string) { d.str(n, p, &r.Cmd) },
			"args":        func(n *yaml.Node, p string) { d.strings(n, p, &r.Args); r.HasArgs = true },
		})
		d.required(n, p, "route", r.Route)
		out = append(out, r)
	})
	return out
}

func (d *decoder) test(n *yaml.Node, path, dir string) *Test {
	t := &Test{Expect: Expect{ExecExact: true}}
	if rn := resolve(n); rn != nil {
		t.Line = rn.Line
	}
	inline := &Notification{}
	var seenInline bool
	var payloadNode *yaml.Node
	note := func(f func(n *yaml.Node, p string)) field {
		return func(n *yaml.Node, p string) { seenInline = true; f(n, p) }
	}
	d.mapping(n, path, map[string]field{
		"name":    func(n *yaml.Node, p string) { d.str(n, p, &t.Name) },
		"payload": func(n *yaml.Node, p string) { d.str(n, p, &t.Payload); payloadNode = n },
		"running": func(n *yaml.Node, p string) { t.Running = d.running(n, p) },
		"state": func(n *yaml.Node, p string) {
			d.mapping(n, p, map[string]field{
				"values": func(n *yaml.Node, p string) {
					var v map[string]map[string]any
					if err := resolve(n).Decode(&v); err != nil {
						d.errorf(n, p, "want route: {key: value}, got %s", describe(n))
						return
					}
					t.State.Values = v
				},
				"cooldown": func(n *yaml.Node, p string) { t.State.Cooldown = d.running(n, p) },
			})
		},
		"expect":             func(n *yaml.Node, p string) { d.expect(n, p, &t.Expect) },
		"alerts":             note(func(n *yaml.Node, p string) { d.alerts(n, p, &inline.Alerts) }),
		"receiver":           note(func(n *yaml.Node, p string) { d.str(n, p, &inline.Receiver) }),
		"status":             note(func(n *yaml.Node, p string) { d.status(n, p, &inline.Status) }),
		"group_key":          note(func(n *yaml.Node, p string) { d.str(n, p, &inline.GroupKey) }),
		"group_labels":       note(func(n *yaml.Node, p string) { d.stringMap(n, p, &inline.GroupLabels) }),
		"common_labels":      note(func(n *yaml.Node, p string) { d.stringMap(n, p, &inline.CommonLabels) }),
		"common_annotations": note(func(n *yaml.Node, p string) { d.stringMap(n, p, &inline.CommonAnnotations) }),
		"external_url":       note(func(n *yaml.Node, p string) { d.str(n, p, &inline.ExternalURL) }),
		"truncated_alerts": note(func(n *yaml.Node, p string) {
			var v int64
			d.integer(n, p, &v)
			inline.TruncatedAlerts = int(clamp(v))
		}),
	})
	rn := resolve(n)
	if rn == nil || rn.Kind != yaml.MappingNode {
		return t
	}
	d.required(n, path, "name", t.Name)
	switch {
	case t.Payload != "" && seenInline:
		d.errorf(rn, join(path, "payload"), "give either payload or alerts, not both")
	case t.Payload != "":
		t.Payload = relativeTo(dir, t.Payload)
		// Found now, with the file's other problems, not when the test
		// runs.
		if _, err := os.Stat(t.Payload); err != nil {
			d.errorf(payloadNode, join(path, "payload"), "%v", err)
		}
	case len(inline.Alerts) == 0:
		d.errorf(rn, join(path, "payload"), "missing: a test needs payload (a recorded notification) or alerts")
	default:
		t.Inline = inline
	}
	return t
}

// required reports a missing field of the mapping n.
func (d *decoder) required(n *yaml.Node, path, name, value string) {
	if rn := resolve(n); value == "" && rn != nil && rn.Kind == yaml.MappingNode {
		d.errorf(rn, join(path, name), "missing")
	}
}

func (d *decoder) status(n *yaml.Node, path string, out *string) {
	d.str(n, path, out)
	if *out != "" && *out != "firing" && *out != "resolved" {
		d.errorf(n, path, "want firing or resolved, got %q", *out)
	}
}

func (d *decoder) alerts(n *yaml.Node, path string, out *[]TestAlert) {
	d.sequence(n, path, func(n *yaml.Node, p string) {
		var a TestAlert
		d.mapping(n, p, map[string]field{
			"status":        func(n *yaml.Node, p string) { d.status(n, p, &a.Status) },
			"labels":        func(n *yaml.Node, p string) { d.stringMap(n, p, &a.Labels) },
			"annotations":   func(n *yaml.Node, p string) { d.stringMap(n, p, &a.Annotations) },
			"fingerprint":   func(n *yaml.Node, p string) { d.str(n, p, &a.Fingerprint) },
			"generator_url": func(n *yaml.Node, p string) { d.str(n, p, &a.GeneratorURL) },
			"starts_at":     func(n *yaml.Node, p string) { d.str(n, p, &a.StartsAt) },
			"ends_at":       func(n *yaml.Node, p string) { d.str(n, p, &a.EndsAt) },
		})
		*out = append(*out, a)
	})
}

func (d *decoder) expect(n *yaml.Node, path string, e *Expect) {
	d.mapping(n, path, map[string]field{
		"exec_exact": func(n *yaml.Node, p string) { d.boolean(n, p, &e.ExecExact) },
		"exec": func(n *yaml.Node, p string) {
			d.sequence(n, p, func(n *yaml.Node, p string) {
				x := ExpectExec{Line: resolve(n).Line}
				d.mapping(n, p, map[string]field{
					"route":       func(n *yaml.Node, p string) { d.str(n, p, &x.Route) },
					"cmd":         func(n *yaml.Node, p string) { d.str(n, p, &x.Cmd) },
					"args":        func(n *yaml.Node, p string) { d.strings(n, p, &x.Args); x.HasArgs = true },
					"env":         func(n *yaml.Node, p string) { d.stringMap(n, p, &x.Env) },
					"fingerprint": func(n *yaml.Node, p string) { d.str(n, p, &x.Fingerprint) },
				})
				d.required(n, p, "route", x.Route)
				e.Exec = append(e.Exec, x)
			})
		},
		"skip": func(n *yaml.Node, p string) {
			d.sequence(n, p, func(n *yaml.Node, p string) {
				s := ExpectSkip{Line: resolve(n).Line}
				d.mapping(n, p, map[string]field{
					"route":  func(n *yaml.Node, p string) { d.str(n, p, &s.Route) },
					"reason": func(n *yaml.Node, p string) { d.str(n, p, &s.Reason) },
				})
				d.required(n, p, "route", s.Route)
				e.Skip = append(e.Skip, s)
			})
		},
		"signal": func(n *yaml.Node, p string) {
			d.sequence(n, p, func(n *yaml.Node, p string) {
				s := ExpectSignal{Line: resolve(n).Line}
				d.mapping(n, p, map[string]field{
					"fingerprint": func(n *yaml.Node, p string) { d.str(n, p, &s.Fingerprint) },
					"signal":      func(n *yaml.Node, p string) { d.signal(n, p, &s.Signal) },
				})
				d.required(n, p, "fingerprint", s.Fingerprint)
				if s.Signal == 0 {
					d.required(n, p, "signal", "")
				}
				e.Signal = append(e.Signal, s)
			})
		},
		"error": func(n *yaml.Node, p string) {
			d.sequence(n, p, func(n *yaml.Node, p string) {
				x := ExpectError{Line: resolve(n).Line}
				d.mapping(n, p, map[string]field{
					"route":   func(n *yaml.Node, p string) { d.str(n, p, &x.Route) },
					"message": func(n *yaml.Node, p string) { d.str(n, p, &x.Message) },
				})
				d.required(n, p, "route", x.Route)
				e.Error = append(e.Error, x)
			})
		},
	})
}
