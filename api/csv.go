package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/greenpost/greenpost/internal/telemetry"
)

// Every collection answers CSV with stable columns (documented in
// docs/api.md and openapi.json); null is an empty cell. The row builders
// below give values as they are: sendCSV guards every cell.

// sendCSV writes every cell, header included, through csvGuard: no export
// can forget the formula guard, whatever its columns.
// With ?bom=1 the answer starts with a UTF-8 byte order mark: Excel on a
// Chinese Windows reads UTF-8 without one as the local code page (garbage).
func sendCSV(c *fiber.Ctx, header []string, rows [][]string) error {
	bom := false
	switch c.Query("bom") {
	case "1":
		bom = true
	case "", "0":
	default:
		return errInvalid("bom", "bom: want 1 (a UTF-8 byte order mark for Excel) or 0")
	}
	// Into the response's pooled body, as the big JSON answers are
	// (sendBuilt): a city's export by outlet is megabytes.
	return sendBuilt(c, "text/csv; charset=utf-8", 0, func(b []byte) ([]byte, error) {
		buf := bytes.NewBuffer(b)
		if bom {
			buf.WriteString("\uFEFF")
		}
		w := csv.NewWriter(buf)
		write := func(rec []string) {
			for i := range rec {
				rec[i] = csvGuard(rec[i])
			}
			w.Write(rec)
		}
		write(header)
		for _, rec := range rows {
			write(rec)
		}
		w.Flush() // writing to a buffer cannot fail
		return buf.Bytes(), nil
	})
}

// formulaStarts are the first characters that make a spreadsheet read a cell
// as a formula (OWASP "CSV injection").
const formulaStarts = "=+-@\t\r"

// plainNumber is a decimal number as the exports write figures: a spreadsheet
// reads it as that number, never as a formula.
var plainNumber = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$`)

// csvGuard is the one formula guard of every CSV cell the API writes. A cell
// that starts with = + - @, a tab or a CR is written with a leading single
// quote, which spreadsheets show as text instead of running it. A cell that
// already starts with a quote gets one more, so that csvUnguard gives back
// every value exactly (an outlet named "'=x" survives export → import).
// Plain numbers (-1.5) stay numbers.
func csvGuard(s string) string {
	// The first byte decides most cells; the number pattern is matched
	// only for those that start like a formula (an export of 10,000 rows
	// has 300,000 cells, and a regexp match per cell was most of its CPU).
	if s == "" || strings.IndexByte(formulaStarts, s[0]) < 0 && s[0] != '\'' || plainNumber.MatchString(s) {
		return s
	}
	return "'" + s
}

// csvUnguard is csvGuard's exact inverse, applied to every imported cell: it
// drops the one quote csvGuard adds (a quote followed by a formula start or
// by another quote), and leaves everything else as it is.
func csvUnguard(s string) string {
	if len(s) >= 2 && s[0] == '\'' && (strings.IndexByte(formulaStarts, s[1]) >= 0 || s[1] == '\'') {
		return s[1:]
	}
	return s
}

func fnum(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

func fptr(v *float64) string {
	if v == nil {
		return ""
	}
	return fnum(*v)
}

func fint(v int64) string { return strconv.FormatInt(v, 10) }

func ftime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// ftimeNano is ftime keeping every digit, so that an export imports exactly.
func ftimeNano(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// outletCSVHeader is the import header plus what the registry adds, so an
// export can be imported again as it is.
var outletCSVHeader = append(append([]string{}, csvColumns...), "active", "active_since", "updated")

func outletCSVRows(os []Outlet) [][]string {
	rows := make([][]string, len(os))
	for i, o := range os {
		rows[i] = []string{o.ID, o.Name, o.District, o.Address, fnum(o.Lat), fnum(o.Lon), o.Operator,
			strconv.FormatBool(o.Active), ftimeNano(o.ActiveSince), o.Updated.UTC().Format(time.RFC3339Nano)}
	}
	return rows
}

var classColumns = telemetry.ClassNames[:]

func parcelCells(p parcelsJSON) []string {
	cells := []string{fint(p.Total), fint(p.Green)}
	for _, n := range p.ByClass.counts() {
		cells = append(cells, fint(n))
	}
	return cells
}

var groupCSVHeader = append(append([]string{"key", "outlets", "covered_outlets", "outlet_coverage", "bin_coverage", "total", "green"}, classColumns...),
	"green_rate", "no_secondary_rate", "reusable_rate", "boxes_recovered", "meets_green_rate", "meets_outlet_coverage",
	"waste_free_outlets", "counter_reporting", "outlets_reporting_parcels", "silent_outlets",
	"meets_bin_coverage", "meets_no_secondary_rate", "targets_set")

// groupCSVRows: a meets_ cell is empty when the set does not judge that
// target; targets_set names the set (empty when none holds the window).
func groupCSVRows(gs []groupRates, j judgedBy) [][]string {
	rows := make([][]string, len(gs))
	for i, g := range gs {
		row := []string{g.Key, strconv.Itoa(g.Outlets), strconv.Itoa(g.CoveredOutlets), fptr(g.OutletCoverage), fptr(g.BinCoverage)}
		row = append(row, parcelCells(g.Parcels)...)
		row = append(row, fptr(g.GreenRate), fptr(g.NoSecondaryRate), fptr(g.ReusableRate), fint(g.BoxesRecovered),
			flagCell(g.Meets.GreenRate), flagCell(g.Meets.OutletCoverage), strconv.Itoa(g.WasteFreeOutlets),
			fptr(g.Completeness.CounterReporting), strconv.Itoa(g.Completeness.OutletsReportingParcels), strconv.Itoa(g.Completeness.SilentOutlets),
			flagCell(g.Meets.BinCoverage), flagCell(g.Meets.NoSecondaryRate), j.setCell())
		rows[i] = row
	}
	return rows
}

// outletGroupCSVHeader is groupCSVHeader with the outlet's name and district
// after its id, for group_by=outlet: a spreadsheet of ids tells a person
// nothing.
var outletGroupCSVHeader = append([]string{"key", "name", "district"}, groupCSVHeader[1:]...)

func outletGroupCSVRows(ctx context.Context, gs []groupRates, j judgedBy, reg *registry) [][]string {
	rows := groupCSVRows(gs, j)
	for i, row := range rows {
		o, _ := reg.Get(ctx, gs[i].Key)
		rows[i] = append([]string{row[0], o.Name, o.District}, row[1:]...)
	}
	return rows
}

var seriesCSVHeader = []string{"t", "v", "reporting"}

func seriesCSVRows(ps []point) [][]string {
	rows := make([][]string, len(ps))
	for i, p := range ps {
		rows[i] = []string{ftime(p.T), fptr(p.V), fptr(p.Reporting)}
	}
	return rows
}

var alertCSVHeader = []string{"kind", "outlet", "name", "district", "address", "device", "since", "value", "detail"}

func alertCSVRows(as []alert) [][]string {
	rows := make([][]string, len(as))
	for i, a := range as {
		since := ""
		if a.Since != nil {
			since = ftime(*a.Since)
		}
		rows[i] = []string{a.Kind, a.Outlet, a.Name, a.District, a.Address, a.Device, since, fptr(a.Value), a.Detail}
	}
	return rows
}

var wasteFreeCSVHeader = []string{"outlet", "district", "operator", "pass", "green_rate", "covered", "bin_coverage", "failed_bars", "reasons", "targets_set"}

func wasteFreeCSVRows(ws []wasteFreeOutlet, j judgedBy) [][]string {
	rows := make([][]string, len(ws))
	for i, w := range ws {
		bars := make([]string, len(w.Reasons))
		details := make([]string, len(w.Reasons))
		for j, r := range w.Reasons {
			bars[j], details[j] = r.Bar, r.Detail
		}
		rows[i] = []string{w.Outlet, w.District, w.Operator, strconv.FormatBool(w.Pass), fptr(w.GreenRate),
			strconv.FormatBool(w.Covered), fnum(w.BinCoverage), strings.Join(bars, " "), strings.Join(details, "; "), j.setCell()}
	}
	return rows
}
