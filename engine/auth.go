package engine

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"

	"github.com/amx-dev/amx/rules"
)

// stageAuth counts requests refused for their credentials.
const stageAuth = "auth"

// guard answers 401 to a request without valid credentials, before its
// body is read, and passes the others to h. It checks against the auth
// section in force, so a reload that changes a secret applies to the next
// request.
func (e *Engine) guard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := e.auth.Load()
		if a.Enabled() && !authorized(a, r) {
			if a.Username != "" {
				w.Header().Set("WWW-Authenticate", `Basic realm="amx", charset="UTF-8"`)
			} else {
				w.Header().Set("WWW-Authenticate", "Bearer")
			}
			// Never the credentials: only that they did not pass.
			e.reject(w, http.StatusUnauthorized, stageAuth, errors.New("unauthorized: missing or wrong credentials"))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// authorized reports whether r carries the basic credentials or the bearer
// token of a. Secrets are compared as SHA-256 digests in constant time, so
// that neither their length nor a matching prefix shows in the timing.
func authorized(a *rules.Auth, r *http.Request) bool {
	if a.Username != "" {
		if user, password, ok := r.BasicAuth(); ok {
			// Both compared, always: & rather than &&.
			return same(user, a.Username)&same(password, a.Password) == 1
		}
	}
	if a.Token != "" {
		scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			return same(strings.TrimSpace(token), a.Token) == 1
		}
	}
	return false
}

func same(given, want string) int {
	g, w := sha256.Sum256([]byte(given)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:])
}

// guardIfProtected guards h while the auth in force protects metrics.
func (e *Engine) guardIfProtected(h http.Handler) http.Handler {
	guarded := e.guard(h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a := e.auth.Load(); a != nil && a.ProtectMetrics {
			guarded.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}
