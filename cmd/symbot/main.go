// Command symbot is a self-hosted Slack bot that grants temporary Okta group
// membership after approval in Slack.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "symbot: under construction")
	os.Exit(2)
}
