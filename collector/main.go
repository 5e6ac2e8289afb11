// Command collector subscribes to outlet telemetry over MQTT, validates every
// message and writes it to InfluxDB without losing an acknowledged message.
package main

import "github.com/greenpost/greenpost/internal/settings"

func main() { settings.Main(run) }
