package rules

import (
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"time"

	"gopkg.in/yaml.v3"
)

// Redis is where replicas of amx share their delivery state.
type Redis struct {
	// Address is host:port.
	Address  string
	Username string
	Password string
	DB       int
	// TLS is the client's TLS configuration; nil connects in clear.
	TLS *tls.Config
	// KeyPrefix starts every key amx writes (default "amx").
	KeyPrefix string
	// Timeout bounds every call to Redis (default 2s).
	Timeout time.Duration
	// LeaseTTL is how long a live process's lease lasts unless its replica
	// renews it (default 30s).
	LeaseTTL time.Duration
}

// Defaults of the redis section.
const (
	DefaultRedisTimeout  = 2 * time.Second
	DefaultRedisLeaseTTL = 30 * time.Second
)

// redis decodes state.redis; dir resolves relative file paths.
func (d *decoder) redis(n *yaml.Node, path, dir string) *Redis {
	r := &Redis{KeyPrefix: "amx", Timeout: DefaultRedisTimeout, LeaseTTL: DefaultRedisLeaseTTL}
	var password, passwordFile string
	var pwNode *yaml.Node
	d.mapping(n, path, map[string]field{
		"address":       func(n *yaml.Node, p string) { d.str(n, p, &r.Address) },
		"username":      func(n *yaml.Node, p string) { d.str(n, p, &r.Username) },
		"password":      func(n *yaml.Node, p string) { d.str(n, p, &password); pwNode = n },
		"password_file": func(n *yaml.Node, p string) { d.str(n, p, &passwordFile); pwNode = n },
		"db": func(n *yaml.Node, p string) {
			var v int64
			if d.integer(n, p, &v) && (v < 0 || v > 15) {
				d.errorf(n, p, "want a database number from 0 to 15")
			}
			r.DB = int(v)
		},
		"key_prefix": func(n *yaml.Node, p string) { d.str(n, p, &r.KeyPrefix) },
		"timeout":    func(n *yaml.Node, p string) { d.positiveDuration(n, p, &r.Timeout) },
		"lease_ttl":  func(n *yaml.Node, p string) { d.positiveDuration(n, p, &r.LeaseTTL) },
		"tls":        func(n *yaml.Node, p string) { r.TLS = d.redisTLS(n, p, dir) },
	})
	if r.Address == "" {
		d.errorf(resolve(n), join(path, "address"), "required: host:port of the Redis server")
	}
	if pwNode != nil {
		r.Password = d.secret(n, pwNode, path, "password", password, passwordFile, dir)
	}
	return r
}

// redisTLS decodes the tls section of state.redis.
func (d *decoder) redisTLS(n *yaml.Node, path, dir string) *tls.Config {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	var caFile, certFile, keyFile string
	var caNode, certNode *yaml.Node
	d.mapping(n, path, map[string]field{
		"ca_file":              func(n *yaml.Node, p string) { d.str(n, p, &caFile); caNode = n },
		"cert_file":            func(n *yaml.Node, p string) { d.str(n, p, &certFile); certNode = n },
		"key_file":             func(n *yaml.Node, p string) { d.str(n, p, &keyFile) },
		"server_name":          func(n *yaml.Node, p string) { d.str(n, p, &c.ServerName) },
		"insecure_skip_verify": func(n *yaml.Node, p string) { d.boolean(n, p, &c.InsecureSkipVerify) },
	})
	if caFile != "" {
		pem, err := d.read.read(relativeTo(dir, caFile))
		c.RootCAs = x509.NewCertPool()
		if err != nil {
			d.errorf(caNode, join(path, "ca_file"), "%v", err)
		} else if !c.RootCAs.AppendCertsFromPEM(pem) {
			d.errorf(caNode, join(path, "ca_file"), "no PEM certificate in %s", caFile)
		}
	}
	if (certFile == "") != (keyFile == "") {
		d.errorf(resolve(n), join(path, "cert_file"), "give both cert_file and key_file, or neither")
	} else if certFile != "" {
		certPEM, err := d.read.read(relativeTo(dir, certFile))
		keyPEM, kerr := d.read.read(relativeTo(dir, keyFile))
		if err == nil && kerr == nil {
			var cert tls.Certificate
			cert, err = tls.X509KeyPair(certPEM, keyPEM)
			c.Certificates = []tls.Certificate{cert}
		}
		if err = cmp.Or(err, kerr); err != nil {
			d.errorf(certNode, join(path, "cert_file"), "%v", err)
		}
	}
	return c
}
