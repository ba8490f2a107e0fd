// Command bare is the limit amx is measured against: a Go HTTP server that
// only reads a webhook body, decodes its JSON into the webhook's shape and
// answers 200. It does nothing with the notification.
//
//	bare -l 127.0.0.1:9999
//
// With -exec it is a webhook executor cut to the bone, in the shape of the
// old prometheus-am-executor: for every notification it runs the command
// with the AMX_* environment, waits for it through os/exec with its output
// captured, and answers 200, or 500 when the command failed. No process
// group, no logging, no duplicate check, no history: what amx's spawn path
// costs beyond that is what its guarantees cost.
//
//	bare -l 127.0.0.1:9999 -exec /bin/true
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"time"
)

// message is Alertmanager's webhook notification (version 4), as amx reads it.
type message struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []struct {
		Status       string            `json:"status"`
		Labels       map[string]string `json:"labels"`
		Annotations  map[string]string `json:"annotations"`
		StartsAt     time.Time         `json:"startsAt"`
		EndsAt       time.Time         `json:"endsAt"`
		GeneratorURL string            `json:"generatorURL"`
		Fingerprint  string            `json:"fingerprint"`
	} `json:"alerts"`
}

func main() {
	addr := flag.String("l", "127.0.0.1:9999", "listen address")
	command := flag.String("exec", "", "run this command for every notification")
	flag.Parse()
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var m message
		if err := json.Unmarshal(body, &m); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if *command != "" {
			cmd := exec.Command(*command)
			cmd.Env = append(os.Environ(), m.env()...)
			if out, err := cmd.CombinedOutput(); err != nil {
				http.Error(w, fmt.Sprintf("%s: %v: %s", *command, err, out), http.StatusInternalServerError)
				return
			}
		}
		io.WriteString(w, "OK\n")
	})
	log.Fatal(http.ListenAndServe(*addr, nil))
}

// env is the notification's AMX_* environment as the old executor set it:
// labels and annotations in map order, names not escaped.
func (m *message) env() []string {
	env := []string{"AMX_RECEIVER=" + m.Receiver, "AMX_STATUS=" + m.Status, "AMX_EXTERNAL_URL=" + m.ExternalURL,
		"AMX_ALERT_LEN=" + strconv.Itoa(len(m.Alerts))}
	add := func(prefix string, vars map[string]string) {
		for k, v := range vars {
			env = append(env, prefix+k+"="+v)
		}
	}
	add("AMX_LABEL_", m.CommonLabels)
	add("AMX_GLABEL_", m.GroupLabels)
	add("AMX_ANNOTATION_", m.CommonAnnotations)
	for i, a := range m.Alerts {
		p := "AMX_ALERT_" + strconv.Itoa(i+1) + "_"
		env = append(env, p+"STATUS="+a.Status, p+"START="+strconv.FormatInt(a.StartsAt.Unix(), 10),
			p+"END="+strconv.FormatInt(a.EndsAt.Unix(), 10), p+"URL="+a.GeneratorURL, p+"FINGERPRINT="+a.Fingerprint)
		add(p+"LABEL_", a.Labels)
		add(p+"ANNOTATION_", a.Annotations)
	}
	return env
}
