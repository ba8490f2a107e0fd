package main

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"testing"
)

// TestPrometheusAlerts: examples/prometheus/amx-alerts.yml passes
// promtool's check and its unit tests, and every amx metric it names is
// one amx serves.
func TestPrometheusAlerts(t *testing.T) {
	promtool := installed(t, "prometheus", "promtool")
	for _, args := range [][]string{{"check", "rules", "amx-alerts.yml"}, {"test", "rules", "amx-alerts.test.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "examples/prometheus"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}

	rules, err := os.ReadFile("examples/prometheus/amx-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	// A failing Lua route gives am_executor_lua_errors_total a series.
	dir := t.TempDir()
	a := startAmx(t, "-f", writeFile(t, dir, "amx.yml", "max_processes: 10\nroutes:\n  - name: r\n    lua: error('x')\n"))
	post(t, nil, "http://"+a.addr+"/", payload(t, "firing-rebootmachine.json"))
	resp, err := http.Get("http://" + a.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	served := regexp.MustCompile(`(?m)^# TYPE (am_executor_\w+)`).FindAllStringSubmatch(string(body), -1)
	names := make([]string, len(served))
	for i, m := range served {
		names[i] = m[1]
	}
	used := regexp.MustCompile(`am_executor_\w+`).FindAllString(string(rules), -1)
	if len(used) == 0 {
		t.Fatal("the rules name no amx metric")
	}
	for _, name := range used {
		if !slices.Contains(names, name) {
			t.Errorf("the rules use %s, which amx does not serve (it serves %v)", name, names)
		}
	}
}
