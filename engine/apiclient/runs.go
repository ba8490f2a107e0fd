package apiclient

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/amx-dev/amx/engine/history"
)

// Processes is GET /api/v1/processes: what the amx runs now.
func (c *Client) Processes(ctx context.Context) (history.ProcessList, error) {
	var l history.ProcessList
	err := c.do(ctx, http.MethodGet, "/api/v1/processes", &l)
	return l, err
}

// Runs is GET /api/v1/runs: the last runs f selects, newest first.
func (c *Client) Runs(ctx context.Context, f history.Filter, limit int) (history.RunList, error) {
	q := url.Values{}
	for k, v := range map[string]string{"action": f.Action, "alertname": f.Alertname, "outcome": f.Outcome} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var l history.RunList
	err := c.do(ctx, http.MethodGet, "/api/v1/runs?"+q.Encode(), &l)
	return l, err
}

// Run is GET /api/v1/runs/ID: one run, with its output.
func (c *Client) Run(ctx context.Context, id uint64) (history.Run, error) {
	var r history.Run
	err := c.do(ctx, http.MethodGet, "/api/v1/runs/"+strconv.FormatUint(id, 10), &r)
	return r, err
}

// PrintProcesses writes processes as a table, each with its last line of
// output.
func PrintProcesses(w io.Writer, l history.ProcessList) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tACTION\tKEY\tALERT\tPID\tELAPSED\tLIVE/MAX\tLAST OUTPUT")
	for _, p := range l.Processes {
		limit := "-"
		if p.Max > 0 {
			limit = strconv.Itoa(p.Max)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%d/%s\t%s\n", p.ID, cell(p.Action), cell(p.Key), cell(alert(p.Run)), p.Pid,
			time.Duration(p.Elapsed*float64(time.Second)).Round(time.Second), p.Live, limit, cell(lastLine(p.Output)))
	}
	tw.Flush()
}

// PrintRuns writes runs as a table, newest first.
func PrintRuns(w io.Writer, l history.RunList) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tSTART\tACTION\tKEY\tALERT\tOUTCOME\tEXIT/REASON\tDURATION")
	for _, r := range l.Runs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Start.Local().Format("2006-01-02 15:04:05"), cell(r.Action),
			cell(r.Key), cell(alert(r)), r.Outcome, cell(ended(r)), duration(r.Duration))
	}
	tw.Flush()
}

// PrintRun writes one run: its fields, then its output.
func PrintRun(w io.Writer, r history.Run) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" && v != "0" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, printable(v))
		}
	}
	row("Run", strconv.FormatUint(r.ID, 10))
	row("Action", r.Action)
	row("Command", strings.TrimSpace(r.Cmd+" "+strings.Join(r.Args, " ")))
	row("Started", r.Start.Local().Format(time.RFC3339))
	row("Outcome", r.Outcome)
	row("Ended", ended(r))
	row("Error", r.Error)
	row("Duration", duration(r.Duration))
	row("PID", strconv.Itoa(r.Pid))
	row("Key", r.Key)
	row("Alert", alert(r))
	row("Group key", r.GroupKey)
	row("Environment", strings.Join(r.Env, " "))
	tw.Flush()
	if r.Output != "" {
		if r.OutputCut {
			fmt.Fprintln(w, "Output (earlier output dropped):")
		} else {
			fmt.Fprintln(w, "Output:")
		}
		fmt.Fprint(w, r.Output)
		if !strings.HasSuffix(r.Output, "\n") {
			fmt.Fprintln(w)
		}
	}
}

// alert is an alert's name and labels, as Prometheus writes them.
func alert(r history.Run) string {
	return r.Alertname + "{" + r.LabelText() + "}"
}

func ended(r history.Run) string {
	switch {
	case r.ExitCode != nil:
		return strconv.Itoa(*r.ExitCode)
	case r.Signal != "":
		return r.Signal
	case r.Count > 1:
		return fmt.Sprintf("%s x%d", r.Reason, r.Count)
	}
	return r.Reason
}

func duration(s float64) string {
	if s == 0 {
		return "-"
	}
	return time.Duration(s * float64(time.Second)).Round(time.Millisecond).String()
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	return s[strings.LastIndexByte(s, '\n')+1:]
}

// cell makes a value fit a table cell: one line, at most 60 characters
// (a terminal is not the place for a whole label set or output line).
func cell(s string) string {
	s = printable(s)
	if s == "" {
		return "-"
	}
	if r := []rune(s); len(r) > 60 {
		return string(r[:59]) + "…"
	}
	return s
}

// printable replaces control characters, so that a label or an output line
// cannot move the cursor or recolour the terminal.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
