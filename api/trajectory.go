package main

import (
	"context"
	"math"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/greenpost/greenpost/internal/metrics"
	"github.com/greenpost/greenpost/internal/trend"
)

// GET /v1/trajectory (ops-v1): per district or for the city, an indicator's
// daily values over the last days, its trend (Theil–Sen, internal/trend)
// and the date its trend reaches the target of the set in force.

// Indicators of GET /v1/trajectory: the city plan's two targets.
var trajectoryIndicators = []string{"green_rate", "outlet_coverage"}

// Days of a trajectory: enough for a fit, at most a quarter.
const (
	defaultTrajectoryDays = 30
	minTrajectoryDays     = trend.MinPoints
	maxTrajectoryDays     = 93
	// reachHorizonDays: a projection further out than a year is no
	// projection (reaches_target_at null).
	reachHorizonDays = 365
)

// trajectoryDay is one day's value (null: nothing to rate that day).
type trajectoryDay struct {
	Day       string   `json:"day"` // YYYY-MM-DD in the city's zone
	V         *float64 `json:"v"`
	Reporting *float64 `json:"reporting"`
}

// trajectoryGroup is one group's trajectory.
type trajectoryGroup struct {
	Key     string          `json:"key"`
	Values  []trajectoryDay `json:"values"`
	Current *float64        `json:"current"` // the last day with a value
	Target  *float64        `json:"target"`  // of the set in force now; null: not judged
	// The robust trend (points a day, as a share) with its 95 % interval;
	// null with fewer than trend.MinPoints days of values.
	TrendPerDay   *float64    `json:"trend_per_day"`
	TrendPerDay95 *[2]float64 `json:"trend_per_day_95"`
	FittedNow     *float64    `json:"fitted_now"` // the trend's value now
	DaysFitted    int         `json:"days_fitted"`
	// When the trend reaches the target: now when the current value meets
	// it; null when the trend does not get there within a year (or there
	// is no target or no trend). Between: the same with the interval's
	// steeper and shallower slopes (the second null when that one does not
	// get there within a year).
	ReachesTargetAt      *time.Time     `json:"reaches_target_at"`
	ReachesTargetBetween *[2]*time.Time `json:"reaches_target_between"`
}

// trajectoryAnswer is GET /v1/trajectory.
type trajectoryAnswer struct {
	GroupBy   string            `json:"group_by"`
	Indicator string            `json:"indicator"`
	Days      int               `json:"days"`
	From      time.Time         `json:"from"`
	To        time.Time         `json:"to"`
	TimeZone  string            `json:"time_zone"`
	Targets   judgedBy          `json:"targets"` // the set in force now
	Groups    []trajectoryGroup `json:"groups"`
}

// setTrend fills the trend's fields from a projection.
func (g *trajectoryGroup) setTrend(pr trend.Projection) {
	if !pr.Fitted {
		return
	}
	slope, lvl := pr.Fit.Slope, pr.FittedNow
	g.TrendPerDay, g.FittedNow = &slope, &lvl
	g.TrendPerDay95 = &[2]float64{pr.Fit.SlopeLow, pr.Fit.SlopeHigh}
}

// trajectoryWindow is the last days whole days in loc before the day of now.
func trajectoryWindow(now time.Time, loc *time.Location, days int) (from, to time.Time) {
	y, m, d := now.In(loc).Date()
	to = time.Date(y, m, d, 0, 0, 0, 0, loc)
	return to.AddDate(0, 0, -days), to
}

// trajectoryOf computes the trajectory of every group.
func (r *rater) trajectoryOf(ctx context.Context, now time.Time, loc *time.Location, days int, groupBy, indicator string, f outletFilter) (trajectoryAnswer, error) {
	from, to := trajectoryWindow(now, loc, days)
	ans := trajectoryAnswer{GroupBy: groupBy, Indicator: indicator, Days: days, From: from.UTC(), To: to.UTC(),
		TimeZone: loc.String(), Targets: r.targets.For(now), Groups: []trajectoryGroup{}}
	// Daily windows from the city's midnights (a day of 23 or 25 hours in
	// a zone with daylight saving is still one day).
	var ws []metrics.Window
	for d := from; d.Before(to); d = d.AddDate(0, 0, 1) {
		ws = append(ws, metrics.Window{From: d.UTC(), To: d.AddDate(0, 0, 1).UTC()})
	}
	ss, err := r.groupSeriesOver(ctx, ws, groupBy, indicator, f)
	if err != nil {
		return ans, err
	}
	target := ans.Targets.byName()[indicator]
	xNow := now.Sub(from).Hours() / 24
	for _, s := range ss {
		g := trajectoryGroup{Key: s.Key, Target: target}
		var ps []trend.Point
		for i, p := range s.Points {
			g.Values = append(g.Values, trajectoryDay{Day: ws[i].From.In(loc).Format(time.DateOnly), V: p.V, Reporting: p.Reporting})
			if p.V != nil {
				// x is the middle of the day, in days from the first.
				ps = append(ps, trend.Point{X: float64(i) + 0.5, Y: *p.V})
				g.Current = p.V
			}
		}
		g.DaysFitted = len(ps)
		if target == nil {
			// Nothing to reach: the trend alone.
			g.setTrend(trend.Project(ps, xNow, nil, math.Inf(1), reachHorizonDays))
		} else {
			pr := trend.Project(ps, xNow, g.Current, *target, reachHorizonDays)
			g.setTrend(pr)
			at := func(d *float64) *time.Time {
				if d == nil {
					return nil
				}
				t := now.Add(time.Duration(*d * 24 * float64(time.Hour))).UTC().Truncate(time.Second)
				return &t
			}
			g.ReachesTargetAt = at(pr.Days)
			if pr.Fitted || pr.Days != nil {
				g.ReachesTargetBetween = &[2]*time.Time{at(pr.Earliest), at(pr.Latest)}
			}
		}
		ans.Groups = append(ans.Groups, g)
	}
	return ans, nil
}

var trajectoryCSVHeader = []string{"key", "current", "target", "trend_per_day", "trend_per_day_low", "trend_per_day_high",
	"fitted_now", "days_fitted", "reaches_target_at", "reaches_target_earliest", "reaches_target_latest", "targets_set"}

func getTrajectory(rt *rater, now clock, timeZone string) fiber.Handler {
	loc, err := time.LoadLocation(timeZone)
	if err != nil {
		loc = time.UTC // checked at start (GP_API_TIME_ZONE); a test may leave it empty
	}
	return func(c *fiber.Ctx) error {
		in, err := readInput(c, takes{CSV: true, Own: []string{"group_by", "indicator", "days"}})
		if err != nil {
			return err
		}
		q, csv := in.Q, in.CSV
		groupBy, err := q.oneOf("group_by", "district", groupSeriesBys...)
		if err != nil {
			return err
		}
		indicator, err := q.oneOf("indicator", "green_rate", trajectoryIndicators...)
		if err != nil {
			return err
		}
		days := defaultTrajectoryDays
		if v, ok := q["days"]; ok {
			if days, err = strconv.Atoi(v); err != nil || days < minTrajectoryDays || days > maxTrajectoryDays {
				return errInvalid("days", "days: want an integer from %d to %d", minTrajectoryDays, maxTrajectoryDays)
			}
		}
		ans, err := rt.trajectoryOf(c.UserContext(), now(), loc, days, groupBy, indicator, outletFilter{})
		if err != nil {
			return err
		}
		if csv {
			rows := make([][]string, len(ans.Groups))
			for i, g := range ans.Groups {
				lo, hi, early, late := "", "", "", ""
				if g.TrendPerDay95 != nil {
					lo, hi = fnum(g.TrendPerDay95[0]), fnum(g.TrendPerDay95[1])
				}
				if g.ReachesTargetBetween != nil {
					early, late = ftimePtr(g.ReachesTargetBetween[0]), ftimePtr(g.ReachesTargetBetween[1])
				}
				rows[i] = []string{g.Key, fptr(g.Current), fptr(g.Target), fptr(g.TrendPerDay), lo, hi, fptr(g.FittedNow),
					strconv.Itoa(g.DaysFitted), ftimePtr(g.ReachesTargetAt), early, late, ans.Targets.setCell()}
			}
			return sendCSV(c, trajectoryCSVHeader, rows)
		}
		return c.JSON(ans)
	}
}

func ftimePtr(t *time.Time) string {
	if t == nil {
		return ""
	}
	return ftime(*t)
}
