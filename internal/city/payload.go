package city

import (
	"math/rand/v2"
	"strconv"

	"github.com/greenpost/greenpost/internal/telemetry"
)

// FW is the firmware version the simulated devices report.
const FW = "2.3.1-sim"

// AppendTelemetry appends the device's current reading as a telemetry-v1
// payload stamped ts (ms since the epoch) and moves seq on. A bin's
// "emptied" flag goes out in the first message after a collection only.
func (d *Device) AppendTelemetry(dst []byte, ts int64) []byte {
	dst = d.appendHead(dst, ts)
	if d.Ref.Kind == telemetry.KindCounter {
		dst = append(dst, `,"parcels":{`...)
		for c, name := range telemetry.ClassNames {
			if c > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, '"')
			dst = append(dst, name...)
			dst = append(dst, `":`...)
			dst = strconv.AppendInt(dst, d.parcels[c], 10)
		}
		dst = append(dst, `},"boxes_recovered":`...)
		dst = strconv.AppendInt(dst, d.boxes, 10)
		return append(dst, '}')
	}
	dst = append(dst, `,"fill_pct":`...)
	dst = strconv.AppendFloat(dst, d.ReadingPct(), 'f', -1, 64)
	dst = append(dst, `,"deposits":`...)
	dst = strconv.AppendInt(dst, d.deposits, 10)
	dst = append(dst, `,"weight_kg":`...)
	// Packaging waste weighs about 150 g an item.
	dst = strconv.AppendFloat(dst, float64(int64(d.items*15+0.5))/100, 'f', -1, 64)
	dst = append(dst, `,"battery_pct":`...)
	dst = strconv.AppendFloat(dst, float64(int64(d.battery*10+0.5))/10, 'f', -1, 64)
	dst = append(dst, `,"rssi_dbm":`...)
	dst = strconv.AppendInt(dst, int64(d.rssi-0.5), 10)
	if d.emptied {
		dst = append(dst, `,"emptied":true`...)
		d.emptied = false
	}
	return append(dst, '}')
}

func (d *Device) appendHead(dst []byte, ts int64) []byte {
	dst = append(dst, `{"ts":`...)
	dst = strconv.AppendInt(dst, ts, 10)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendInt(dst, d.Seq, 10)
	dst = append(dst, `,"boot":`...)
	dst = strconv.AppendInt(dst, d.Boot, 10)
	d.Seq++
	return dst
}

// AppendStatus appends a status payload: online with ts and fw.
func AppendStatus(dst []byte, ts int64) []byte {
	dst = append(dst, `{"state":"online","ts":`...)
	dst = strconv.AppendInt(dst, ts, 10)
	return append(dst, `,"fw":"`+FW+`"}`...)
}

// WillPayload is the Last Will: offline, without ts (the collector stamps it
// with the time the broker delivers it).
const WillPayload = `{"state":"offline"}`

// MalformedReasons are the reasons of the malformed messages the simulator
// sends, each the result telemetry.Decode gives for it.
var MalformedReasons = []telemetry.Reason{telemetry.ReasonBadJSON, telemetry.ReasonOutOfRange, telemetry.ReasonUnknownClass}

// AppendMalformed appends a deliberately invalid telemetry payload, like a
// device with a firmware bug would send, and returns the reason the
// collector must reject it with. A bin sends cut-off JSON or a fill level
// over 100; a counter also sends an unknown packaging class. It uses seq
// like any message but carries nothing: the counts it would have carried
// arrive with the next valid message.
func (d *Device) AppendMalformed(dst []byte, ts int64, r *rand.Rand) ([]byte, telemetry.Reason) {
	kinds := 2
	if d.Ref.Kind == telemetry.KindCounter {
		kinds = 3
	}
	reason := MalformedReasons[r.IntN(kinds)]
	start := len(dst)
	switch reason {
	case telemetry.ReasonBadJSON:
		emptied := d.emptied
		dst = d.AppendTelemetry(dst, ts)
		d.emptied = emptied // the news did not get through
		// Cut in the middle, as a message truncated by a buggy buffer.
		dst = dst[:start+(len(dst)-start)/2]
	case telemetry.ReasonOutOfRange:
		dst = d.appendHead(dst, ts)
		if d.Ref.Kind == telemetry.KindBin {
			dst = append(dst, `,"fill_pct":`...)
			dst = strconv.AppendFloat(dst, 100+float64(1+r.IntN(200))/10, 'f', -1, 64)
			dst = append(dst, `,"deposits":`...)
			dst = strconv.AppendInt(dst, d.deposits, 10)
			dst = append(dst, '}')
		} else {
			dst = append(dst, `,"parcels":{"reusable":-`...)
			dst = strconv.AppendInt(dst, 1+d.parcels[telemetry.Reusable], 10)
			dst = append(dst, `}}`...)
		}
	case telemetry.ReasonUnknownClass:
		dst = d.appendHead(dst, ts)
		dst = append(dst, `,"parcels":{"recyclable":`...)
		dst = strconv.AppendInt(dst, d.parcels[telemetry.Recyclable], 10)
		dst = append(dst, `,"paper":3}}`...)
	}
	return dst, reason
}
