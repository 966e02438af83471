package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

// generatorCommands print the man page and the fish completion from the
// flag definitions themselves, so neither can drift from --help. They are
// hidden: `make man completions` calls them.
func generatorCommands() []*cli.Command {
	return []*cli.Command{
		{
			Name:   "__man",
			Hidden: true,
			Action: func(c *cli.Context) error {
				man, err := c.App.ToMan()
				if err != nil {
					return fmt.Errorf("man page: %w", err)
				}
				fmt.Fprint(c.App.Writer, man)
				return nil
			},
		},
		{
			Name:   "__fish-completion",
			Hidden: true,
			Action: func(c *cli.Context) error {
				fish, err := c.App.ToFishCompletion()
				if err != nil {
					return fmt.Errorf("fish completion: %w", err)
				}
				fmt.Fprint(c.App.Writer, fish)
				return nil
			},
		},
	}
}
