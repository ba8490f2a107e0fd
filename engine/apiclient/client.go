// Package apiclient reads and changes a running amx through its HTTP API,
// for amx's client subcommands (amx state), with the credentials the
// webhook asks for.
package apiclient

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/amx-dev/amx/engine/state"
)

// Client talks to one amx.
type Client struct {
	URL      string // base URL: http://127.0.0.1:8080
	Username string
	Password string
	Token    string
	HTTP     *http.Client
}

// Flags adds the options a client needs to fs, and returns the client they
// fill; call Load after parsing.
func Flags(fs *flag.FlagSet) *Client {
	c := &Client{HTTP: &http.Client{Timeout: 10 * time.Second}}
	fs.StringVar(&c.URL, "url", "http://127.0.0.1:8080", "URL of the amx to ask")
	fs.StringVar(&c.Username, "basic-auth.username", "", "Username, when amx's auth asks for basic_auth")
	fs.StringVar(&c.Password, "basic-auth.password-file", "", "File holding the password, with --basic-auth.username")
	fs.StringVar(&c.Token, "bearer-token-file", "", "File holding the bearer token, when amx's auth asks for one")
	return c
}

// Load reads the secrets the flags name.
func (c *Client) Load() error {
	for _, f := range []*string{&c.Password, &c.Token} {
		if *f == "" {
			continue
		}
		b, err := os.ReadFile(*f)
		if err != nil {
			return err
		}
		*f = strings.TrimSpace(string(b))
	}
	return nil
}

func (c *Client) do(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.URL, "/")+path, nil)
	if err != nil {
		return err
	}
	if c.Username != "" {
		req.SetBasicAuth(c.Username, c.Password)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s: %s", method, req.URL, resp.Status, strings.TrimSpace(string(body)))
	}
	return json.Unmarshal(body, out)
}

// StateList is GET /api/v1/state.
type StateList struct {
	Backend string        `json:"backend"`
	Entries []state.Entry `json:"entries"`
}

// State lists the entries whose ID starts with prefix.
func (c *Client) State(ctx context.Context, prefix string) (StateList, error) {
	var l StateList
	err := c.do(ctx, http.MethodGet, "/api/v1/state?prefix="+url.QueryEscape(prefix), &l)
	return l, err
}

// DeleteState removes the entries whose ID starts with prefix and returns
// how many there were.
func (c *Client) DeleteState(ctx context.Context, prefix string) (int, error) {
	var out struct {
		Deleted int `json:"deleted"`
	}
	err := c.do(ctx, http.MethodDelete, "/api/v1/state?prefix="+url.QueryEscape(prefix), &out)
	return out.Deleted, err
}

// PrintState writes entries as a table: ID, kind, what it holds, expiry.
func PrintState(w io.Writer, l StateList, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tVALUE\tEXPIRES")
	for _, e := range l.Entries {
		expires := "-"
		if !e.Expires.IsZero() && e.Expires.Year() < 9999 {
			expires = e.Expires.Sub(now).Round(time.Second).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.ID, e.Kind, describe(e), expires)
	}
	tw.Flush()
}

func describe(e state.Entry) string {
	switch e.Kind {
	case state.KindClaim:
		if e.Once {
			return e.State + " (once)"
		}
		return e.State
	case state.KindValue:
		if e.Value == nil {
			return ""
		}
		if e.Value.IsNum {
			return fmt.Sprint(e.Value.Num)
		}
		return fmt.Sprintf("%q", e.Value.Str)
	case state.KindRate:
		return fmt.Sprintf("%d starts", len(e.Starts))
	case state.KindLease:
		return fmt.Sprintf("%d live", e.Count)
	case state.KindCooldown:
		return "since " + e.At.Format(time.RFC3339)
	}
	return ""
}
