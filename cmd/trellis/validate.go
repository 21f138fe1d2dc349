package main

import "github.com/spf13/cobra"

// newValidateCmd: TODO config work.
func newValidateCmd() *cobra.Command { return &cobra.Command{Use: "validate DIR"} }
