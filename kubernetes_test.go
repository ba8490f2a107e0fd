package main

// The Kubernetes examples: every manifest parses, and what refers to
// something else finds it (ConfigMaps, Secrets, claims, ports, selectors,
// mount paths, probe paths amx serves), and the config in the ConfigMap
// passes amx check.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

type object = map[string]any

// dig follows keys (strings) and indexes (ints) into a decoded document.
func dig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(object)
			v = m[k]
		case int:
			l, _ := v.([]any)
			if k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any, path ...any) string { s, _ := dig(v, path...).(string); return s }
func list(v any, path ...any) []any { l, _ := dig(v, path...).([]any); return l }

// manifests reads every document of every .yaml file under dir, by kind
// and name.
func manifests(t *testing.T, dir string) map[string]object {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	more, _ := filepath.Glob(filepath.Join(dir, "*", "*.yaml"))
	out := map[string]object{}
	for _, f := range append(files, more...) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var doc object
			if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			kind, name := str(doc, "kind"), str(doc, "metadata", "name")
			if kind == "" || name == "" || str(doc, "apiVersion") == "" {
				t.Errorf("%s: a document without apiVersion, kind or name", f)
				continue
			}
			if _, dup := out[kind+"/"+name]; dup {
				t.Errorf("%s: %s/%s defined twice", f, kind, name)
			}
			out[kind+"/"+name] = doc
		}
	}
	return out
}

// selects reports whether selector (matchLabels or a Service's selector)
// picks labels.
func selects(selector, labels any) bool {
	sel, _ := selector.(object)
	lab, _ := labels.(object)
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if lab[k] != v {
			return false
		}
	}
	return true
}

func TestKubernetesManifests(t *testing.T) {
	objs := manifests(t, "examples/kubernetes")
	served := []string{"/-/healthy", "/-/ready", "/_health"}
	deployments := 0
	for key, d := range objs {
		if str(d, "kind") != "Deployment" {
			continue
		}
		deployments++
		pod := dig(d, "spec", "template")
		if !selects(dig(d, "spec", "selector", "matchLabels"), dig(pod, "metadata", "labels")) {
			t.Errorf("%s: its selector does not select its pods", key)
		}
		volumes := map[string]object{}
		for _, v := range list(pod, "spec", "volumes") {
			v := v.(object)
			volumes[str(v, "name")] = v
			if n := str(v, "configMap", "name"); n != "" && objs["ConfigMap/"+n] == nil {
				t.Errorf("%s: volume %s: no ConfigMap %s", key, str(v, "name"), n)
			}
			if n := str(v, "secret", "secretName"); n != "" && objs["Secret/"+n] == nil {
				t.Errorf("%s: volume %s: no Secret %s", key, str(v, "name"), n)
			}
			if n := str(v, "persistentVolumeClaim", "claimName"); n != "" {
				if objs["PersistentVolumeClaim/"+n] == nil {
					t.Errorf("%s: volume %s: no PersistentVolumeClaim %s", key, str(v, "name"), n)
				}
				if slices.Contains(list(objs["PersistentVolumeClaim/"+n], "spec", "accessModes"), any("ReadWriteOnce")) &&
					str(d, "spec", "strategy", "type") != "Recreate" {
					t.Errorf("%s: a ReadWriteOnce volume needs strategy Recreate", key)
				}
			}
		}
		for _, c := range list(pod, "spec", "containers") {
			ports := map[string]bool{}
			for _, p := range list(c, "ports") {
				ports[str(p, "name")] = true
				ports[fmt.Sprint(dig(p, "containerPort"))] = true
			}
			mounts := map[string]string{}
			for _, m := range list(c, "volumeMounts") {
				if volumes[str(m, "name")] == nil {
					t.Errorf("%s: mount %s: no such volume", key, str(m, "name"))
				}
				mounts[str(m, "mountPath")] = str(m, "name")
			}
			for _, probe := range []string{"livenessProbe", "readinessProbe"} {
				p := dig(c, probe)
				if p == nil {
					t.Errorf("%s: %s has no %s", key, str(c, "name"), probe)
					continue
				}
				if port := dig(p, "httpGet", "port"); port != nil && !ports[fmt.Sprint(port)] {
					t.Errorf("%s: %s port %v is not a container port", key, probe, port)
				}
				if path := str(p, "httpGet", "path"); path == "" && dig(p, "tcpSocket") == nil {
					t.Errorf("%s: %s checks nothing", key, probe)
				} else if path != "" && !slices.Contains(served, path) {
					t.Errorf("%s: %s path %s is not one amx serves", key, probe, path)
				}
			}
			if dig(c, "securityContext", "readOnlyRootFilesystem") != true || dig(c, "securityContext", "allowPrivilegeEscalation") != false {
				t.Errorf("%s: %s: want a read-only root and no privilege escalation", key, str(c, "name"))
			}
			if dig(pod, "spec", "securityContext", "runAsNonRoot") != true {
				t.Errorf("%s: want runAsNonRoot", key)
			}
			if dig(c, "resources", "limits", "memory") == nil {
				t.Errorf("%s: %s has no memory limit", key, str(c, "name"))
			}
			if str(c, "name") == "amx" {
				checkAmxContainer(t, key, objs, c, mounts, volumes)
			}
		}
	}
	for key, o := range objs {
		switch str(o, "kind") {
		case "Service", "PodDisruptionBudget":
			sel := dig(o, "spec", "selector")
			if str(o, "kind") == "PodDisruptionBudget" {
				sel = dig(sel, "matchLabels")
			}
			var target object
			for _, d := range objs {
				if str(d, "kind") == "Deployment" && selects(sel, dig(d, "spec", "template", "metadata", "labels")) {
					target = d
				}
			}
			if target == nil {
				t.Errorf("%s selects no Deployment's pods", key)
				continue
			}
			for _, p := range list(o, "spec", "ports") {
				found := false
				for _, cp := range list(target, "spec", "template", "spec", "containers", 0, "ports") {
					found = found || dig(p, "targetPort") == dig(cp, "name") || dig(p, "targetPort") == dig(cp, "containerPort")
				}
				if !found {
					t.Errorf("%s: targetPort %v is no port of its pods", key, dig(p, "targetPort"))
				}
			}
		}
	}
	if deployments < 3 {
		t.Errorf("%d Deployments, want amx, amx with replicas and Redis", deployments)
	}
	checkAlertmanagerReceiver(t, objs)
}

// checkAmxContainer checks an amx container against its configuration: it
// reads the config the ConfigMap mounted where its -f says, which passes
// amx check with the files it names, and Redis is a Service.
func checkAmxContainer(t *testing.T, key string, objs map[string]object, c any, mounts map[string]string, volumes map[string]object) {
	t.Helper()
	args := list(c, "args")
	if len(args) < 2 || args[0] != "-f" {
		t.Errorf("%s: amx's args %v: want -f CONFIG", key, args)
		return
	}
	config := args[1].(string)
	vol := volumes[mounts[filepath.Dir(config)]]
	cm := objs["ConfigMap/"+str(vol, "configMap", "name")]
	data, _ := dig(cm, "data").(object)
	if data[filepath.Base(config)] == nil {
		t.Errorf("%s: -f %s: no such key in the ConfigMap mounted at %s", key, config, filepath.Dir(config))
		return
	}
	if mounts["/tmp"] == "" || dig(volumes[mounts["/tmp"]], "emptyDir") == nil {
		t.Errorf("%s: no emptyDir at /tmp for AMX_PAYLOAD_FILE", key)
	}
	// The mounted files, in a directory of their own, as amx sees them;
	// other mounts (the Secret) are moved under it.
	dir := t.TempDir()
	root := func(p string) string {
		p = filepath.Join(dir, "root", p)
		os.MkdirAll(p, 0o755)
		return p
	}
	for name, v := range data {
		writeFile(t, root(filepath.Dir(config)), name, v.(string))
	}
	text := data[filepath.Base(config)].(string)
	// A mount's path in the config becomes a mark, then its place under
	// dir once every mount is marked: a path already moved is not moved
	// again.
	var expand []string
	moved := func(text, path string) string {
		re := regexp.MustCompile(`(^|[\s"'\[,])` + regexp.QuoteMeta(path+"/"))
		mark := fmt.Sprintf("\x00%d\x00/", len(expand))
		expand = append(expand, mark, root(path)+"/")
		return re.ReplaceAllString(text, "${1}"+mark)
	}
	for path, name := range mounts {
		if s := str(volumes[name], "secret", "secretName"); s != "" {
			for k, v := range dig(objs["Secret/"+s], "stringData").(object) {
				writeFile(t, root(path), k, v.(string))
			}
			text = moved(text, path)
		}
		if strings.Contains(text, path+"/") && path != filepath.Dir(config) && dig(volumes[name], "secret") == nil {
			if dig(volumes[name], "persistentVolumeClaim") == nil && dig(volumes[name], "emptyDir") == nil {
				t.Errorf("%s: the config names %s, on a volume that is not writable", key, path)
			}
			text = moved(text, path)
		}
	}
	text = strings.NewReplacer(expand...).Replace(text)
	file := writeFile(t, root(filepath.Dir(config)), filepath.Base(config), text)
	out, err := exec.Command(amxBin, "check", file).CombinedOutput()
	if err != nil {
		t.Errorf("%s: amx check of its config: %v\n%s", key, err, out)
	}
	var cfg struct {
		State struct {
			Redis struct{ Address string } `yaml:"redis"`
		} `yaml:"state"`
	}
	yaml.Unmarshal([]byte(text), &cfg)
	if a := cfg.State.Redis.Address; a != "" {
		host, port, _ := strings.Cut(a, ":")
		svc := objs["Service/"+host]
		if svc == nil || fmt.Sprint(dig(svc, "spec", "ports", 0, "port")) != port {
			t.Errorf("%s: state.redis.address %s is not a Service and its port", key, a)
		}
	}
}

// checkAlertmanagerReceiver: the receiver's URL is the amx Service's, and
// the file is a valid Alertmanager configuration.
func checkAlertmanagerReceiver(t *testing.T, objs map[string]object) {
	t.Helper()
	b, err := os.ReadFile("examples/kubernetes/alertmanager.yml")
	if err != nil {
		t.Fatal(err)
	}
	var am object
	if err := yaml.Unmarshal(b, &am); err != nil {
		t.Fatal(err)
	}
	url := str(am, "receivers", 0, "webhook_configs", 0, "url")
	svc := objs["Service/amx"]
	want := fmt.Sprintf("http://amx.%s.svc:%v/", str(svc, "metadata", "namespace"), dig(svc, "spec", "ports", 0, "port"))
	if url != want {
		t.Errorf("Alertmanager sends to %s, want the amx Service: %s", url, want)
	}
	amtool := installed(t, "prometheus-alertmanager", "amtool")
	// credentials_file must exist for amtool to accept the file.
	dir := t.TempDir()
	cred := str(am, "receivers", 0, "webhook_configs", 0, "http_config", "authorization", "credentials_file")
	text := strings.ReplaceAll(string(b), cred, writeFile(t, dir, "token", "x"))
	out, err := exec.Command(amtool, "check-config", writeFile(t, dir, "alertmanager.yml", text)).CombinedOutput()
	if err != nil {
		t.Errorf("amtool check-config: %v\n%s", err, out)
	}
}
