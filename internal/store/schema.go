package store

// The project's own measurements, declared once (storage-v1 leaves them to
// us; docs/storage.md describes them). The telemetry measurements of
// storage-v1 are declared by internal/telemetry, which maps messages to
// points. To add a measurement: its names here, a file with its record
// type, its write (telemetry.Line) and its read (latestByKey or a scan),
// and an integration test beside registry_test.go.
const (
	// MeasurementRegistry holds the outlet registry: one point per write of
	// an outlet, keyed by TagID; the latest point of an id wins.
	MeasurementRegistry = "outlet_registry"
	// MeasurementRollup holds the metrics engine's hourly summaries.
	MeasurementRollup = "rollup"
	// MeasurementRollupState records how far the roll-up was built.
	MeasurementRollupState = "rollup_state"

	// MeasurementTargets holds the target sets: one point per write of a
	// set, keyed by TagID; the latest point of an id wins.
	MeasurementTargets = "target_set"
	// MeasurementAudit holds one point per successful write through the
	// API, tagged with the key's name; it is only ever appended to.
	MeasurementAudit = "audit"

	TagID            = "id"  // the key of keyed measurements (registry, target sets)
	TagAuditKey      = "key" // the name of the API key that made the change
	TagRollupVersion = "v"   // the roll-up's options and meaning

	FieldRollupData       = "data"        // base64 of an encoded summary; "" is a tombstone
	FieldRollupServing    = "serving_min" // minutes with a serving bin
	FieldRollupCounting   = "counter_min" // minutes with a fresh counter
	FieldRollupBuiltFrom  = "built_from"
	FieldRollupBuiltTo    = "built_to"
	FieldRegistryDeleted  = "deleted"
	FieldRegistryActive   = "active"
	FieldRegistrySince    = "active_since"
	FieldRegistryName     = "name"
	FieldRegistryDistrict = "district"
	FieldRegistryAddress  = "address"
	FieldRegistryOperator = "operator"
	FieldRegistryLat      = "lat"
	FieldRegistryLon      = "lon"
	FieldTargetsName      = "name"
	FieldTargetsSource    = "source"
	FieldTargetsValidFrom = "valid_from" // RFC 3339
	FieldTargetsValidTo   = "valid_to"   // RFC 3339, "" when open-ended
	FieldTargetsValues    = "targets"    // JSON object: indicator → number or null
	FieldTargetsDeleted   = "deleted"
	FieldAuditMethod      = "method"
	FieldAuditPath        = "path"
	FieldAuditTarget      = "target"
	FieldAuditChange      = "change" // JSON
)
