package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/trellis-mesh/trellis/internal/config"
	"github.com/trellis-mesh/trellis/internal/gatewayapi"
)

// newValidateCmd is `trellis validate DIR`: load the directory offline as
// trellisd would and report every problem.
func newValidateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "validate DIR",
		Short: "Check the Istio YAML in a directory without running anything",
		Long: "validate reads every *.yaml and *.yml file directly in DIR, as trellisd does, and prints\n" +
			"each problem as file:line: Kind namespace/name: field: message. It exits 1 if there is any.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return validateDir(cmd.OutOrStdout(), args[0])
		},
	}
}

// validateDir prints each error on its own line, then a summary; on errors
// the summary is returned as an exit-code-1 error instead.
func validateDir(out io.Writer, dir string) error {
	files, err := config.ReadDir(dir)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	set, errs := config.Merge(files)
	// Gateway API references (parents, listeners, backends) as trellisd converts them.
	_, gwErrs := gatewayapi.Apply(set, gatewayapi.Options{})
	errs = append(errs, gwErrs...)
	if len(errs) > 0 {
		badFiles := make(map[string]bool)
		for _, e := range errs {
			fmt.Fprintln(out, e.Error())
			badFiles[e.File] = true
		}
		return &exitError{code: 1, err: errors.New(plural(len(errs), "error") + " in " + plural(len(badFiles), "file"))}
	}
	fmt.Fprintf(out, "ok: %s in %s\n", plural(set.Len(), "resource"), plural(len(files), "file"))
	return nil
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
