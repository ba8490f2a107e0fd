package rules

import (
	"crypto/x509"
	"strings"

	"gopkg.in/yaml.v3"
)

// Auth is who may send notifications: what Alertmanager's http_config can
// present. A request passes with valid basic credentials or a valid bearer
// token, whichever are configured; with ClientCAs, the TLS handshake first
// requires a client certificate one of them signed. The secrets are read
// from the configuration or the files it names, which a reload reads again.
type Auth struct {
	// Username and Password are the basic_auth credentials; Username is
	// empty without basic auth.
	Username, Password string
	// Token is the bearer token of authorization; empty without.
	Token string
	// ClientCAs verify client certificates; nil without mTLS.
	ClientCAs *x509.CertPool
	// ProtectMetrics puts /metrics and /-/reload behind the same checks as
	// the webhook. The health and readiness endpoints stay open.
	ProtectMetrics bool
}

// Enabled reports whether requests must present credentials.
func (a *Auth) Enabled() bool {
	return a != nil && (a.Username != "" || a.Token != "")
}

// Kinds names the checks in force, for the log: "basic", "bearer" and
// "client-certificate", or "none".
func (a *Auth) Kinds() string {
	var kinds []string
	if a != nil && a.Username != "" {
		kinds = append(kinds, "basic")
	}
	if a != nil && a.Token != "" {
		kinds = append(kinds, "bearer")
	}
	if a != nil && a.ClientCAs != nil {
		kinds = append(kinds, "client-certificate")
	}
	if kinds == nil {
		return "none"
	}
	return strings.Join(kinds, ",")
}

// auth decodes the auth section. Relative file paths resolve against the
// configuration's directory.
// It also returns the client_ca_file node, for the check that TLS is on.
func (d *decoder) auth(n *yaml.Node, path, dir string) (a *Auth, caNode *yaml.Node) {
	a = &Auth{}
	var caFile string
	var protectNode *yaml.Node
	d.mapping(n, path, map[string]field{
		"basic_auth": func(n *yaml.Node, p string) {
			var password, passwordFile string
			var pwNode *yaml.Node
			d.mapping(n, p, map[string]field{
				"username":      func(n *yaml.Node, p string) { d.str(n, p, &a.Username) },
				"password":      func(n *yaml.Node, p string) { d.str(n, p, &password); pwNode = n },
				"password_file": func(n *yaml.Node, p string) { d.str(n, p, &passwordFile); pwNode = n },
			})
			if a.Username == "" {
				d.errorf(n, join(p, "username"), "required")
			}
			a.Password = d.secret(n, pwNode, p, "password", password, passwordFile, dir)
		},
		"authorization": func(n *yaml.Node, p string) {
			var credentials, credentialsFile string
			var credNode *yaml.Node
			d.mapping(n, p, map[string]field{
				"type": func(n *yaml.Node, p string) {
					var t string
					d.str(n, p, &t)
					if !strings.EqualFold(t, "Bearer") {
						d.errorf(n, p, "only Bearer is supported, got %q", t)
					}
				},
				"credentials":      func(n *yaml.Node, p string) { d.str(n, p, &credentials); credNode = n },
				"credentials_file": func(n *yaml.Node, p string) { d.str(n, p, &credentialsFile); credNode = n },
			})
			a.Token = d.secret(n, credNode, p, "credentials", credentials, credentialsFile, dir)
		},
		"client_ca_file":  func(n *yaml.Node, p string) { d.str(n, p, &caFile); caNode = n },
		"protect_metrics": func(n *yaml.Node, p string) { d.boolean(n, p, &a.ProtectMetrics); protectNode = n },
	})
	if caFile != "" {
		pem, err := d.read.read(relativeTo(dir, caFile))
		a.ClientCAs = x509.NewCertPool()
		switch {
		case err != nil:
			d.errorf(caNode, join(path, "client_ca_file"), "%v", err)
		case !a.ClientCAs.AppendCertsFromPEM(pem):
			d.errorf(caNode, join(path, "client_ca_file"), "%s: no PEM certificate", caFile)
		}
	}
	if a.ProtectMetrics && a.Username == "" && a.Token == "" {
		d.errorf(protectNode, join(path, "protect_metrics"), "needs basic_auth or authorization to protect with")
	}
	return a, caNode
}

// secret is a value given inline (name) or in a file (name_file), exactly
// one of them; a file's surrounding white space is trimmed, as
// Alertmanager does.
func (d *decoder) secret(section, node *yaml.Node, path, name, inline, file, dir string) string {
	switch {
	case inline != "" && file != "":
		d.errorf(node, join(path, name), "%s and %s_file are exclusive", name, name)
	case file != "":
		data, err := d.read.read(relativeTo(dir, file))
		if err != nil {
			d.errorf(node, join(path, name+"_file"), "%v", err)
			return ""
		}
		if s := strings.TrimSpace(string(data)); s != "" {
			return s
		}
		d.errorf(node, join(path, name+"_file"), "%s is empty", file)
	case inline == "":
		d.errorf(section, join(path, name), "required (or %s_file)", name)
	}
	return inline
}
