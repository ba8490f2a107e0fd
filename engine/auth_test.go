package engine

import (
	"bytes"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/amx-dev/amx/rules"
)

// unread is a request body that fails the test if anyone reads it.
type unread struct{ t *testing.T }

func (u unread) Read([]byte) (int, error) {
	u.t.Error("the body of an unauthorized request was read")
	return 0, io.EOF
}

func TestAuth(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	set := &rules.Set{Commands: []*rules.Command{{Name: "commands[0]", Cmd: "touch", Args: []string{marker}, Process: notify}}}
	basic := &rules.Auth{Username: "alertmanager", Password: "s3cret-pass"}
	bearer := &rules.Auth{Token: "t0ken-value"}
	both := &rules.Auth{Username: "alertmanager", Password: "s3cret-pass", Token: "t0ken-value", ProtectMetrics: true}
	type header struct{ basicUser, basicPassword, authorization string }
	for _, tc := range []struct {
		name   string
		auth   *rules.Auth
		header header
		code   int
		scheme string // WWW-Authenticate on a 401
	}{
		{"no auth configured", nil, header{}, 200, ""},
		{"basic: none given", basic, header{}, 401, `Basic realm="amx", charset="UTF-8"`},
		{"basic: right", basic, header{basicUser: "alertmanager", basicPassword: "s3cret-pass"}, 200, ""},
		{"basic: wrong password", basic, header{basicUser: "alertmanager", basicPassword: "s3cret-pas"}, 401, "Basic"},
		{"basic: password too long", basic, header{basicUser: "alertmanager", basicPassword: "s3cret-passs"}, 401, "Basic"},
		{"basic: wrong user", basic, header{basicUser: "admin", basicPassword: "s3cret-pass"}, 401, "Basic"},
		{"basic: a bearer token instead", basic, header{authorization: "Bearer s3cret-pass"}, 401, "Basic"},
		{"bearer: right", bearer, header{authorization: "Bearer t0ken-value"}, 200, ""},
		{"bearer: scheme in any case", bearer, header{authorization: "bEARER t0ken-value"}, 200, ""},
		{"bearer: wrong", bearer, header{authorization: "Bearer t0ken-valuf"}, 401, "Bearer"},
		{"bearer: a prefix", bearer, header{authorization: "Bearer t0ken"}, 401, "Bearer"},
		{"bearer: another scheme", bearer, header{authorization: "Token t0ken-value"}, 401, "Bearer"},
		{"bearer: basic instead", bearer, header{basicUser: "t0ken-value", basicPassword: "t0ken-value"}, 401, "Bearer"},
		{"both: basic passes", both, header{basicUser: "alertmanager", basicPassword: "s3cret-pass"}, 200, ""},
		{"both: bearer passes", both, header{authorization: "Bearer t0ken-value"}, 200, ""},
		{"both: neither", both, header{}, 401, "Basic"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(marker)
			var logs bytes.Buffer
			e := New(Options{Config: &rules.Config{MaxBodyBytes: 4096, Set: set, Auth: tc.auth}, Rules: compile(t, set),
				Log: slog.New(slog.NewTextHandler(&logs, nil))})
			h := e.Handler()
			var body io.Reader = strings.NewReader(firing)
			if tc.code == 401 {
				body = unread{t}
			}
			req := httptest.NewRequest("POST", "/", body)
			if tc.header.basicUser != "" {
				req.SetBasicAuth(tc.header.basicUser, tc.header.basicPassword)
			}
			if tc.header.authorization != "" {
				req.Header.Set("Authorization", tc.header.authorization)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.code {
				t.Fatalf("%d %q, want %d", rec.Code, rec.Body, tc.code)
			}
			_, err := os.Stat(marker)
			if ran := err == nil; ran != (tc.code == 200) {
				t.Errorf("command ran: %v, answer %d", ran, tc.code)
			}
			if tc.code == 401 {
				if got := rec.Header().Get("WWW-Authenticate"); !strings.HasPrefix(got, tc.scheme) {
					t.Errorf("WWW-Authenticate %q, want %q", got, tc.scheme)
				}
				if rec.Body.String() != "unauthorized: missing or wrong credentials\n" {
					t.Errorf("answer %q", rec.Body)
				}
			}
			for _, secret := range []string{"s3cret", "t0ken", "Authorization", "Basic YW"} {
				if strings.Contains(logs.String(), secret) {
					t.Errorf("the log shows %q:\n%s", secret, logs.String())
				}
			}
			// Health and readiness are open; metrics and reload only
			// without protect_metrics.
			protected := tc.auth != nil && tc.auth.ProtectMetrics
			for path, wantCode := range map[string]int{"/_health": 200, "/-/healthy": 200, "/-/ready": 200,
				"/metrics": map[bool]int{false: 200, true: 401}[protected]} {
				if code, _ := do(t, h, "GET", path, ""); code != wantCode {
					t.Errorf("GET %s without credentials: %d, want %d", path, code, wantCode)
				}
			}
			if code, _ := do(t, h, "POST", "/-/reload", ""); protected && code != 401 {
				t.Errorf("POST /-/reload without credentials: %d, want 401", code)
			}
			if tc.code == 401 && !protected {
				if _, metrics := do(t, h, "GET", "/metrics", ""); !hasLine(metrics, `am_executor_errors_total{stage="auth"} 1`) {
					t.Error("the refusal is not counted")
				}
			}
		})
	}
}

// TestAuthReload: secrets from files are read again on reload.
func TestAuthReload(t *testing.T) {
	dir := t.TempDir()
	writeTestFile(t, dir, "password", "first\n")
	e, _ := reloadable(t, dir, "auth:\n  basic_auth:\n    username: am\n    password_file: password\ncommands:\n  - cmd: 'true'\n")
	h := e.Handler()
	post := func(password string) int {
		req := httptest.NewRequest("POST", "/", strings.NewReader(firing))
		req.SetBasicAuth("am", password)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	if post("first") != 200 || post("second") != 401 {
		t.Fatal("the password from the file (trimmed) is not in force")
	}
	writeTestFile(t, dir, "password", "second")
	if code, answer := do(t, h, "POST", "/-/reload", ""); code != 200 {
		t.Fatalf("reload: %d %q", code, answer)
	}
	if post("first") != 401 || post("second") != 200 {
		t.Error("the new password is not in force after the reload")
	}
}
