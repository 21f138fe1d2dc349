package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/trellis-mesh/trellis/internal/analyze"
	"github.com/trellis-mesh/trellis/internal/config"
	"github.com/trellis-mesh/trellis/internal/gatewayapi"
	"github.com/trellis-mesh/trellis/internal/registry"
	"github.com/trellis-mesh/trellis/internal/snapshot"
)

// newAnalyzeCmd is `trellis analyze DIR`: istioctl analyze for a config
// directory, and with --check-access an authorization check of one call.
func newAnalyzeCmd() *cobra.Command {
	var strict bool
	var access accessFlags
	cmd := &cobra.Command{
		Use:   "analyze DIR [--check-access SRC_NS/SRC_WORKLOAD DST_NS/DST_WORKLOAD[:PORT]]",
		Short: "Find configuration mistakes before traffic does",
		Long: "analyze loads DIR as trellisd would and prints each problem with a code and a one-line fix:\n" +
			"subsets without a DestinationRule, routes to unknown hosts, two VirtualServices for one host,\n" +
			"rules that can never match, Gateway hosts without a route, weights that do not add up to 100,\n" +
			"DestinationRule subsets that select no workload, workloads no other workload may call and\n" +
			"AuthorizationPolicies that select no workload. It exits 1 if there is an error, and with\n" +
			"--strict also if there is a warning.\n\n" +
			"With --check-access SRC DST[:PORT] it instead decides one call as DST's sidecar would: SRC's\n" +
			"identity (over mTLS when SRC has a sidecar) sending --method --path to each inbound port of DST\n" +
			"(or PORT), and prints ALLOW or DENY with the deciding AuthorizationPolicy. It exits 1 on DENY.",
		Args: func(cmd *cobra.Command, args []string) error {
			if access.src != "" {
				return cobra.ExactArgs(2)(cmd, args)
			}
			return cobra.ExactArgs(1)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if access.src != "" {
				return checkAccess(cmd.OutOrStdout(), args[0], access, args[1])
			}
			return analyzeDir(cmd.OutOrStdout(), args[0], strict)
		},
	}
	cmd.Flags().BoolVar(&strict, "strict", false, "exit 1 on warnings too")
	cmd.Flags().StringVar(&access.src, "check-access", "", "source workload NAMESPACE/NAME; the destination NAMESPACE/NAME[:PORT] follows DIR")
	cmd.Flags().StringVar(&access.method, "method", "GET", "request method for --check-access")
	cmd.Flags().StringVar(&access.path, "path", "/", "request path for --check-access")
	return cmd
}

type accessFlags struct{ src, method, path string }

// load reads dir into a snapshot as trellisd would (default mesh settings),
// Gateway API resources converted to Istio's (internal/gatewayapi): policies
// that target a Gateway reach its workloads through them. It also returns
// the set as written, for the analyzers, and the conversion's problems
// among errs.
func load(dir string) (*snapshot.Snapshot, *config.Set, []*config.Error, error) {
	files, err := config.ReadDir(dir)
	if err != nil {
		return nil, nil, nil, err
	}
	set, errs := config.Merge(files)
	converted, gwErrs := gatewayapi.Apply(set, gatewayapi.Options{})
	errs = append(errs, gwErrs...)
	snap := &snapshot.Snapshot{Version: 1, Config: converted, Registry: registry.NewServiceEntrySource().Registry(converted), Mesh: snapshot.DefaultMesh()}
	return snap, set, errs, nil
}

// analyzeDir prints every finding, then a summary line.
func analyzeDir(out io.Writer, dir string, strict bool) error {
	snap, set, errs, err := load(dir)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	findings := append(analyze.FromErrors(errs), analyze.Analyze(set, snap.Registry, analyze.Options{})...)
	findings = append(findings, analyze.Authorization(snap)...)
	var nErr, nWarn int
	for _, f := range findings {
		fmt.Fprintln(out, f.String())
		if f.Severity == analyze.Error {
			nErr++
		} else {
			nWarn++
		}
	}
	if len(findings) == 0 {
		fmt.Fprintf(out, "ok: no problems in %s\n", plural(set.Len(), "resource"))
		return nil
	}
	summary := fmt.Errorf("%s, %s", plural(nErr, "error"), plural(nWarn, "warning"))
	if nErr > 0 || strict {
		return &exitError{code: 1, err: summary}
	}
	fmt.Fprintln(out, summary)
	return nil
}

// checkAccess prints one line per destination port: ALLOW or DENY, the
// call, and the deciding policy.
func checkAccess(out io.Writer, dir string, f accessFlags, dst string) error {
	src, err := analyze.ParseWorkloadRef(f.src)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("--check-access: %w", err)}
	}
	q := analyze.AccessQuery{Source: src, Method: f.method, Path: f.path}
	if i := strings.LastIndexByte(dst, ':'); i >= 0 {
		p, err := strconv.ParseUint(dst[i+1:], 10, 16)
		if err != nil || p == 0 {
			return &exitError{code: 2, err: fmt.Errorf("destination %q: bad port", dst)}
		}
		q.Port, dst = uint32(p), dst[:i]
	}
	if q.Destination, err = analyze.ParseWorkloadRef(dst); err != nil {
		return &exitError{code: 2, err: err}
	}
	snap, _, _, err := load(dir)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	decisions, err := analyze.NewAccess(snap).Check(q)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	denied := 0
	for _, d := range decisions {
		verdict := "ALLOW"
		if !d.Allowed {
			verdict = "DENY"
			denied++
		}
		fmt.Fprintf(out, "%s %s → %s:%d %s %s: %s\n", verdict, q.Source, q.Destination, d.Port, q.Method, q.Path, d.Reason)
	}
	if denied > 0 {
		return &exitError{code: 1, err: fmt.Errorf("access denied on %s", plural(denied, "port"))}
	}
	return nil
}
