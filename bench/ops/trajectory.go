package main

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/greenpost/greenpost/internal/trend"
)

// trajectoryBench measures how far the trajectory's projected date can be
// trusted: simulated districts whose green share rises at a known rate
// report 30 days of daily values (binomial noise for the district's daily
// parcels, and one day in twenty odd: a holiday that pulls the share down
// 5 points, or a counter outage that halves the parcels counted), and the
// date internal/trend projects (as GET /v1/trajectory does: the Theil–Sen
// line's value now, walked to the target) is compared with the known one.
func trajectoryBench(trials int) {
	fmt.Println("\ntrajectory: 30 days of daily green shares rising at a known rate towards 0.90, the date projected from now")
	fmt.Println("| rise a day | parcels a day | known date (days ahead) | median error | p90 error | 95 % range holds the date | no date given |")
	fmt.Println("|---|---|---|---|---|---|---|")
	r := rand.New(rand.NewPCG(3, 30))
	for _, rate := range []float64{0.001, 0.003, 0.005} {
		for _, volume := range []float64{2000, 20000} {
			var errs []float64
			held, none := 0, 0
			var ahead []float64
			for range trials {
				// The known date: 5 to 60 days after the 30 days.
				d := 5 + 55*r.Float64()
				s0 := 0.9 - rate*(30+d)
				var ps []trend.Point
				var cur *float64
				for i := range 30 {
					x := float64(i) + 0.5
					share, n := s0+rate*x, volume*(0.8+0.4*r.Float64())
					switch u := r.Float64(); {
					case u < 0.025:
						share -= 0.05 // a holiday's parcels are less green
					case u < 0.05:
						n /= 2 // a counter was down half the day
					}
					v := share + math.Sqrt(share*(1-share)/n)*r.NormFloat64()
					ps = append(ps, trend.Point{X: x, Y: v})
					cur = &ps[len(ps)-1].Y
				}
				p := trend.Project(ps, 30, cur, 0.9, 365)
				ahead = append(ahead, d)
				if p.Days == nil {
					none++
					continue
				}
				errs = append(errs, math.Abs(*p.Days-d))
				if p.Earliest != nil && *p.Earliest <= d && (p.Latest == nil || *p.Latest >= d) {
					held++
				}
			}
			fmt.Printf("| %.1f points | %.0f | %.0f–%.0f | %.1f days | %.1f days | %.0f %% | %.0f %% |\n", rate*100, volume,
				pct(ahead, 0), pct(ahead, 0.999), pct(errs, 0.5), pct(errs, 0.9), 100*float64(held)/float64(trials), 100*float64(none)/float64(trials))
		}
	}
}
