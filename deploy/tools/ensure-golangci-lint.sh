#!/usr/bin/env bash
# Builds golangci-lint (the version .golangci.yml is written for) once into
# the user cache and prints the binary's path. make test runs it with the
# house's dependency rules (depguard) and the dead-code check.
set -euo pipefail
exec "$(dirname "$0")/go-install-once.sh" golangci-lint 2.15.0 github.com/golangci/golangci-lint/v2/cmd/golangci-lint
