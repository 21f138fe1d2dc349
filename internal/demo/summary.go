package demo

import (
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"text/tabwriter"
)

// row is one line of the summary table.
type row struct {
	name  string
	c     *child
	where string
}

func proxyWhere(w Workload) string {
	if w.Gateway {
		return fmt.Sprintf("%s (gateway :8080, admin :%d)", w.Proxy, AdminPort)
	}
	return fmt.Sprintf("%s (inbound :%d, HTTP proxy :%d, admin :%d)", w.Proxy, w.AppAddr.Port(), HTTPProxyPort, AdminPort)
}

// printSummary tells the user what runs where and what to try.
func printSummary(out io.Writer, dir string, rows []row) {
	fmt.Fprintf(out, "\nBookinfo runs on the Trellis mesh. Logs: %s\n\n", filepath.Join(dir, "logs"))
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "COMPONENT\tPID\tLISTENS ON\tLOG")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.name, strconv.Itoa(r.c.pid()), r.where, filepath.Base(r.c.log))
	}
	tw.Flush()
	config := filepath.Join(dir, "config")
	extras := filepath.Join(dir, "extras")
	fmt.Fprintf(out, `
Things to try:
  # reviews v1 (no stars), v2 (black) and v3 (red) take turns:
  curl -s %[1]s | grep -o 'reviews-v[0-9]'
  # send every reviews call to v3 and watch the page change (rm the file to undo):
  cp %[2]s/virtual-service-reviews-v3.yaml %[3]s/
  # or: jason sees v2, everyone else v1 (one reviews VirtualService at a time):
  cp %[2]s/virtual-service-reviews-jason-v2.yaml %[3]s/ && curl -s -H 'end-user: jason' %[1]s | grep -o 'reviews-v[0-9]'
  # what the proxies were told, and what the control plane pushed:
  curl -s 127.0.10.1:15000/config_dump | head ; curl -s %[4]s/debug/syncz

`, ProductPageURL, extras, config, MonitoringAddr)
	fmt.Fprintf(out, "%s%s (Ctrl-C stops everything)\n", ReadyPrefix, ProductPageURL)
}
