// Package deploytest tests the files under deploy/ the way a city's IT team
// uses them, without the Docker engine or the Kubernetes cluster that this
// machine does not have: the compose file's wiring (every setting, secret,
// volume, port and healthcheck), the images' build commands as the
// Dockerfile writes them, setup.sh and the InfluxDB tokens script, the
// Kubernetes base and overlay as rendered, the alert rules with promtool,
// and the Grafana dashboard's Flux queries on a real InfluxDB 1.8.10.
// (The programs' settings are checked by each program's own
// TestDeployFilesSettingsAccepted, and compose's Mosquitto config by the
// collector's TestMosquittoShippedConfig.)
package deploytest
