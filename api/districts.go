package main

import (
	"context"
	"slices"
	"sort"
	"strconv"
	_ "time/tzdata" // GP_API_TIME_ZONE loads on a machine without a zoneinfo database

	"github.com/gofiber/fiber/v2"

	"github.com/greenpost/greenpost/internal/city"
)

// districtInfo is one district of GET /v1/districts: its id (the registry's
// group key), its display names and how many active outlets it has.
type districtInfo struct {
	ID      string `json:"id"`
	NameZH  string `json:"name_zh"`
	NameEN  string `json:"name_en"`
	Outlets int    `json:"outlets"`
}

// districtsAnswer is GET /v1/districts.
type districtsAnswer struct {
	TimeZone  string         `json:"time_zone"`
	Scope     *scopeJSON     `json:"scope,omitempty"` // a scoped key's scope; absent for the whole city
	Targets   judgedBy       `json:"targets"`         // the set in force now
	Districts []districtInfo `json:"districts"`
}

// districtNames are the display names the API knows: Wuhan's 13, shipped
// with the city model (internal/city), by id.
var districtNames = func() map[string][2]string {
	m := map[string][2]string{}
	for _, d := range city.Wuhan() {
		m[d.ID] = [2]string{d.NameZH, d.Name}
	}
	return m
}()

// districtList lists the city's districts: those of GP_API_DISTRICTS (or,
// unset, the city model's) in their order, then any other district the
// registry holds, by id. A district without a known display name shows its
// id in both languages, so nothing an operator registered goes missing.
// A scoped key sees the districts of its scope and of the outlets it sees.
func districtList(ctx context.Context, reg *registry, allowed []string) []districtInfo {
	if len(allowed) == 0 {
		for _, d := range city.Wuhan() {
			allowed = append(allowed, d.ID)
		}
	}
	visible := reg.Select(ctx, outletFilter{}) // an inactive outlet's district is a district too
	count := map[string]int{}
	seen := map[string]bool{}
	for _, o := range visible {
		seen[o.District] = true
		if o.Active {
			count[o.District]++
		}
	}
	s := scopeOf(ctx)
	var ids []string
	for _, id := range allowed {
		if s.all || slices.Contains(s.districts, id) || s.districts == nil && seen[id] {
			ids = append(ids, id)
		}
	}
	var extra []string
	for id := range seen {
		if !slices.Contains(ids, id) {
			extra = append(extra, id)
		}
	}
	sort.Strings(extra)
	out := make([]districtInfo, 0, len(ids)+len(extra))
	for _, id := range append(slices.Clone(ids), extra...) {
		d := districtInfo{ID: id, NameZH: id, NameEN: id, Outlets: count[id]}
		if n, ok := districtNames[id]; ok {
			d.NameZH, d.NameEN = n[0], n[1]
		}
		out = append(out, d)
	}
	return out
}

var districtCSVHeader = []string{"id", "name_zh", "name_en", "outlets"}

func getDistricts(reg *registry, allowed []string, timeZone string, targets *targetBook, now clock) fiber.Handler {
	return func(c *fiber.Ctx) error {
		in, err := readInput(c, takes{CSV: true})
		if err != nil {
			return err
		}
		csv := in.CSV
		ds := districtList(c.UserContext(), reg, allowed)
		if csv {
			rows := make([][]string, len(ds))
			for i, d := range ds {
				rows[i] = []string{d.ID, d.NameZH, d.NameEN, strconv.Itoa(d.Outlets)} // sendCSV guards every cell
			}
			return sendCSV(c, districtCSVHeader, rows)
		}
		return c.JSON(districtsAnswer{TimeZone: timeZone, Scope: scopeOf(c.UserContext()).describe(), Targets: targets.For(now()), Districts: ds})
	}
}

// getDistrictOutlines serves the district outlines of the dashboard's map:
// the bytes internal/city embeds (one copy in the repository). Open, like
// the dashboard's other files: outlines are public geography.
func getDistrictOutlines() fiber.Handler {
	return func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, "application/geo+json")
		c.Set(fiber.HeaderCacheControl, "max-age=86400")
		return c.Send(city.WuhanGeoJSON())
	}
}
