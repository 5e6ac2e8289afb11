// Command api serves the outlet registry, green-packaging rates, bin
// coverage, alerts, exports and the dashboard over HTTP.
package main

import "github.com/greenpost/greenpost/internal/settings"

func main() { settings.Main(run) }
