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

	TagID            = "id" // the key of keyed measurements (registry)
	TagRollupVersion = "v"  // the roll-up's options and meaning

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
)
