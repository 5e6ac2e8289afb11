package provision

import (
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/greenpost/greenpost/internal/city"
	"github.com/greenpost/greenpost/internal/settings"
	"github.com/greenpost/greenpost/internal/telemetry"
)

// Usage is the synopsis of `gpctl provision`.
const Usage = `gpctl provision -out DIR (-devices FILE [-registry FILE] | -sim-outlets N [-sim-bins 2] [-sim-seed 1]) [-collectors collector-1,...]`

// Run is `gpctl provision` (args without the program and command names):
// it reads the device list, plans the credentials against those already in
// -out, writes every file and says what changed on stdout.
func Run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("provision", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, "usage: "+Usage); fs.PrintDefaults() }
	out := fs.String("out", "", "directory for the credentials and broker files (created 0700; an earlier run's credentials there are kept)")
	devicesFile := fs.String("devices", "", "CSV with the columns device,outlet,kind (bin or counter): the devices to enrol")
	registryFile := fs.String("registry", "", "the outlet registry CSV (the API's import format): every device's outlet must be in it")
	simOutlets := fs.Int("sim-outlets", 0, "enrol the simulator's city instead of -devices: its outlets (as firmware-sim -outlets)")
	simBins := fs.Int("sim-bins", 2, "with -sim-outlets: bins per outlet (as firmware-sim -bins)")
	simSeed := fs.Int64("sim-seed", 1, "with -sim-outlets: the city's seed (as firmware-sim -seed)")
	collectors := fs.String("collectors", "collector-1", "comma-separated collector usernames, one per collector instance (each is also its client id)")
	if err := fs.Parse(args); err != nil {
		return &settings.Error{Problems: []string{err.Error()}}
	}
	var problems []string
	if *out == "" {
		problems = append(problems, "-out: required")
	}
	if (*devicesFile == "") == (*simOutlets == 0) {
		problems = append(problems, "give either -devices or -sim-outlets")
	}
	if fs.NArg() > 0 {
		problems = append(problems, fmt.Sprintf("unexpected arguments %q", fs.Args()))
	}
	if len(problems) > 0 {
		return &settings.Error{Problems: problems}
	}

	var (
		devices []Device
		outlets map[string]bool
		err     error
	)
	if *registryFile != "" {
		if outlets, err = readRegistry(*registryFile); err != nil {
			return err
		}
	}
	if *simOutlets > 0 {
		c, err := city.New(city.Config{Seed: *simSeed, Outlets: *simOutlets, Bins: *simBins})
		if err != nil {
			return &settings.Error{Problems: []string{err.Error()}}
		}
		for _, d := range c.Devices() {
			devices = append(devices, Device{ID: d.ID, Outlet: d.Outlet.ID, Kind: d.Kind})
		}
	} else if devices, err = readDevices(*devicesFile); err != nil {
		return err
	}
	var names []string
	if *collectors != "" {
		names = strings.Split(*collectors, ",")
	}

	credPath := filepath.Join(*out, CredentialsFile)
	old, err := ReadCredentials(credPath)
	if err != nil {
		return err
	}
	creds, ch, err := Plan(devices, names, outlets, old)
	if err != nil {
		return err
	}
	if err := Write(*out, creds); err != nil {
		return err
	}
	nDev := len(creds) - len(names)
	fmt.Fprintf(stdout, "provisioned in %s: %d devices, %d collector users; %d added, %d kept, %d revoked\n",
		*out, nDev, len(names), len(ch.Added), len(ch.Kept), len(ch.Revoked))
	list := func(what string, ids []string) {
		if len(ids) == 0 {
			return
		}
		if len(ids) > 20 {
			ids = append(slices.Clone(ids[:20]), fmt.Sprintf("… and %d more", len(ids)-20))
		}
		fmt.Fprintf(stdout, "%s: %s\n", what, strings.Join(ids, " "))
	}
	list("revoked", ch.Revoked)
	list("moved (password kept; new outlet or kind)", ch.Moved)
	fmt.Fprintf(stdout, "%s (0600) holds every password in clear: hand it to the installer, keep it for the next run, never ship it to a broker.\n", CredentialsFile)
	fmt.Fprintf(stdout, "brokers: %s (embedded broker), %s and %s (Mosquitto: reload with SIGHUP), %s and %s (EMQX)\n",
		EmbeddedUsers, MosquittoPasswd, MosquittoACL, EMQXUsers, EMQXACL)
	return nil
}

// readDevices reads the device list: a CSV with a header naming (at least)
// the columns device, outlet and kind, in any order.
func readDevices(path string) ([]Device, error) {
	recs, col, err := readCSV(path, "device", "outlet", "kind")
	if err != nil {
		return nil, err
	}
	var out []Device
	var problems []string
	for i, r := range recs {
		d := Device{ID: r[col["device"]], Outlet: r[col["outlet"]], Kind: telemetry.ParseKind(r[col["kind"]])}
		if d.Kind == 0 {
			problems = append(problems, fmt.Sprintf("%s: line %d: kind %q: want bin or counter", path, i+2, r[col["kind"]]))
			continue
		}
		out = append(out, d)
	}
	if len(problems) > 0 {
		return nil, &Error{Problems: problems}
	}
	return out, nil
}

// readRegistry returns the outlet ids of a registry CSV (column id).
func readRegistry(path string) (map[string]bool, error) {
	recs, col, err := readCSV(path, "id")
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, r := range recs {
		if id := r[col["id"]]; telemetry.ValidID(id) {
			out[id] = true
		}
	}
	return out, nil
}

// readCSV reads a CSV whose header holds the named columns and returns the
// rows after the header and each column's index.
func readCSV(path string, columns ...string) ([][]string, map[string]int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(recs) == 0 {
		return nil, nil, errors.New(path + ": empty")
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))] = i
	}
	for _, c := range columns {
		if _, ok := col[c]; !ok {
			return nil, nil, fmt.Errorf("%s: the header has no column %s (want %s)", path, c, strings.Join(columns, ","))
		}
	}
	return recs[1:], col, nil
}
