// Package spool is the collector's durable queue: an append-only log of
// records on local disk, written with group commit (one fsync for many
// records) and read back in order.
//
// The collector acknowledges an MQTT message only after the record that
// carries it is in the spool and fsynced; a writer then drains the spool to
// InfluxDB and commits what was stored. A crash at any moment loses nothing
// that was acknowledged: on Open the spool is recovered and everything not
// yet committed is read again (InfluxDB points are idempotent, so a replay
// is harmless).
//
// # Layout
//
// Segment files seg-<position>.v2.log, where position (20 digits) is the
// global byte offset of the file's first byte, and a file named "committed"
// holding the position up to which records were stored elsewhere, with a
// CRC-32C of its digits. A record is a 16-byte header and its data:
//
//	magic       4 bytes  FF FE 'G' 'P'
//	length      uint32   little-endian, at most MaxRecord
//	data CRC    uint32   CRC-32C (Castagnoli) of the data
//	header CRC  uint32   CRC-32C of the 12 bytes before it
//	data        length bytes
//
// # Damage
//
// A record whose header or data fails its check is damage. The reader looks
// for the next intact record: a magic followed by a header whose own CRC
// holds and whose data matches its CRC. Both checks must pass, so damaged
// bytes that happen to look like a magic cannot pass for a record, and
// neither can a record's data: FF and FE never occur in UTF-8, which is all
// the collector stores. The bytes stepped over are copied to
// quarantine-<segment position>-<offset in the segment>.bin in the spool
// directory (both 20 digits) and reported once through Options.OnDamage;
// then reading goes on. A damaged record costs that record alone.
//
// Only a torn tail is ever cut: at Open, bytes after the last intact record
// of the last segment that are too few for a header, or whose intact header
// announces more data than the file holds, are a write that a crash
// interrupted (never acknowledged). Any other trailing damage is kept, and
// appending goes on in a new segment, so the reader reports it like any
// other. Nothing that was committed is cut, and an unreadable committed
// file makes the spool read everything it holds again rather than guess.
//
// # The previous format
//
// The previous release wrote seg-<position>.log files whose records are a
// 4-byte length, a 4-byte CRC-32C of the data and the data, with no magic,
// and a committed file without a CRC. Open still reads them: such segments
// are read until they are committed and removed, and appending always goes
// to a new .v2.log segment. A damaged record in them can only be stepped
// over by its own length when the record after it is intact; otherwise
// the rest of that segment is quarantined, as that release did (without the
// copy). The previous release refuses to open a spool with .v2.log files
// (it finds a segment name it cannot parse) instead of ignoring them.
package spool
