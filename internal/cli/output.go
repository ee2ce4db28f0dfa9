package cli

import (
	"github.com/spf13/cobra"

	"github.com/sitekeeper/sitekeeper/internal/printer"
)

// outputFlag registers -o on a read command, with the formats every read
// command takes; more says what this command prints beyond them.
func outputFlag(cmd *cobra.Command, output *string, more string) {
	usage := "table, wide, yaml or json"
	if more != "" {
		usage += " (" + more + ")"
	}
	cmd.Flags().StringVarP(output, "output", "o", "table", usage)
}

// checkOutput refuses an unknown -o as a usage error. "text", the name
// plan and validate gave their table before every read command took the
// same formats, still means table, so that scripts written then work.
func checkOutput(output *string) error {
	if *output == "text" {
		*output = "table"
	}
	if err := printer.CheckFormat(*output, printer.Formats...); err != nil {
		return usagef("%v", err)
	}
	return nil
}
