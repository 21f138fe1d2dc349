package main

import "github.com/spf13/cobra"

// newDemoCmd: TODO demo work.
func newDemoCmd() *cobra.Command { return &cobra.Command{Use: "demo"} }
