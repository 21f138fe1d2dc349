package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/trellis-mesh/trellis/internal/analyze"
	"github.com/trellis-mesh/trellis/internal/config"
)

// newAnalyzeCmd is `trellis analyze DIR`: istioctl analyze for a config
// directory.
func newAnalyzeCmd() *cobra.Command {
	var strict bool
	cmd := &cobra.Command{
		Use:   "analyze DIR",
		Short: "Find configuration mistakes before traffic does",
		Long: "analyze loads DIR as trellisd would and prints each problem with a code and a one-line fix:\n" +
			"subsets without a DestinationRule, routes to unknown hosts, two VirtualServices for one host,\n" +
			"rules that can never match, Gateway hosts without a route, weights that do not add up to 100,\n" +
			"and DestinationRule subsets that select no workload. It exits 1 if there is an error, and\n" +
			"with --strict also if there is a warning.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return analyzeDir(cmd.OutOrStdout(), args[0], strict)
		},
	}
	cmd.Flags().BoolVar(&strict, "strict", false, "exit 1 on warnings too")
	return cmd
}

// analyzeDir prints every finding, then a summary line.
func analyzeDir(out io.Writer, dir string, strict bool) error {
	files, err := config.ReadDir(dir)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	set, errs := config.Merge(files)
	findings := append(analyze.FromErrors(errs), analyze.Analyze(set, nil, analyze.Options{})...)
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
