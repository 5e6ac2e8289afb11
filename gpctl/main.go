// Command gpctl is the operator's tool: `gpctl provision` enrols devices
// and collectors with the brokers (passwords, Mosquitto's and EMQX's users
// and ACLs, the embedded broker's users file); `gpctl probe` is the
// containers' healthcheck.
package main

import "github.com/greenpost/greenpost/internal/settings"

func main() { settings.Main(run) }
