// Command firmware-sim simulates a city of outlet devices (recycling bins
// and parcel counters) over MQTT and records the ground truth of what it sent.
package main

import "github.com/greenpost/greenpost/internal/settings"

func main() { settings.Main(run) }
