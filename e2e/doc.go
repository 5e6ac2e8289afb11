// Package e2e tests GreenPost as a whole: the simulator publishes a city
// over a real Mosquitto, the collector stores it in a real InfluxDB 1.8.10,
// and the API's numbers must equal the simulator's ground truth.
package e2e
