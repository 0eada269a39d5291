package enrichevent

import (
	"log/slog"
	"strings"
	"testing"
	"time"
)

// env returns a getenv func over m.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadConfigDefaults(t *testing.T) {
	c, err := loadConfig(env(map[string]string{"METADATA_URI": "gs://b/devices.csv"}))
	if err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	want := config{
		metadataURI:          "gs://b/devices.csv",
		metadataTTL:          time.Hour,
		metadataMaxStaleness: 24 * time.Hour,
		metadataMaxShrink:    0.5,
		metadataShrinkWait:   time.Hour,
		missRefreshInterval:  time.Minute,
		deviceIDField:        "device_id",
		eventTimeField:       "event_time",
		maxPayloadBytes:      1048576,
		maxRequestBytes:      16777216,
		bqBatchMaxRows:       500,
		bqBatchMaxDelay:      5 * time.Millisecond,
		bqWriteTimeout:       30 * time.Second,
		logLevel:             slog.LevelInfo,
	}
	if c != want {
		t.Errorf("loadConfig = %+v, want %+v", c, want)
	}
}

func TestLoadConfigValues(t *testing.T) {
	c, err := loadConfig(env(map[string]string{
		"METADATA_URI":                   "/data/devices.ndjson",
		"METADATA_TTL":                   "2s",
		"METADATA_MAX_STALENESS":         "1m",
		"METADATA_MAX_SHRINK":            "0.2",
		"METADATA_SHRINK_WAIT":           "3h",
		"METADATA_MISS_REFRESH_INTERVAL": "10s",
		"DEVICE_ID_FIELD":                "serial",
		"EVENT_TIME_FIELD":               "ts",
		"MAX_PAYLOAD_BYTES":              "2048",
		"MAX_REQUEST_BYTES":              "33554432",
		"BQ_TABLE":                       "proj.ds.events",
		"BQ_ERROR_TABLE":                 "errors",
		"LOG_LEVEL":                      "debug",
	}))
	if err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	if c.metadataTTL != 2*time.Second || c.metadataMaxStaleness != time.Minute || c.metadataMaxShrink != 0.2 ||
		c.metadataShrinkWait != 3*time.Hour || c.missRefreshInterval != 10*time.Second || c.deviceIDField != "serial" || c.eventTimeField != "ts" ||
		c.maxPayloadBytes != 2048 || c.maxRequestBytes != 33554432 || c.bqErrorTable != "errors" || c.logLevel != slog.LevelDebug {
		t.Errorf("loadConfig = %+v: some value not taken", c)
	}
	if c.bqProject != "proj" || c.bqDataset != "ds" || c.bqTable != "events" || c.project != "proj" {
		t.Errorf("BQ_TABLE parsed as %q %q %q (trace project %q), want proj ds events", c.bqProject, c.bqDataset, c.bqTable, c.project)
	}
}

// TestLoadConfigErrorsNameTheVariable: a bad value fails with a message
// naming the variable and what is wrong.
func TestLoadConfigErrorsNameTheVariable(t *testing.T) {
	tests := []struct {
		name, value, want string
	}{
		{"METADATA_TTL", "soon", "not a positive duration"},
		{"METADATA_TTL", "-1h", "not a positive duration"},
		{"METADATA_MAX_STALENESS", "1s", "shorter than METADATA_TTL"},
		{"BQ_BATCH_MAX_DELAY", "20s", "more than half of BQ_WRITE_TIMEOUT 30s"},
		{"METADATA_MAX_SHRINK", "1.5", "not a fraction"},
		{"METADATA_MAX_SHRINK", "0", "not a fraction"},
		{"METADATA_MISS_REFRESH_INTERVAL", "x", "not a positive duration"},
		{"MAX_PAYLOAD_BYTES", "1MB", "not a positive integer"},
		{"MAX_REQUEST_BYTES", "0", "not a positive integer"},
		{"MAX_REQUEST_BYTES", "1048576", "below 16777216, the push envelope of the largest message Pub/Sub accepts"},
		{"BQ_TABLE", "dataset.table", "not project.dataset.table"},
		{"BQ_TABLE", "p..t", "not project.dataset.table"},
		{"BQ_ERROR_TABLE", "p.d.errors", "not a table id"},
		{"BQ_ERROR_TABLE", "d:errors", "not a table id"},
		{"BQ_BATCH_MAX_ROWS", "-3", "not a positive integer"},
		{"BQ_BATCH_MAX_DELAY", "5", "not a positive duration"},
		{"BQ_WRITE_TIMEOUT", "forever", "not a positive duration"},
		{"BQ_WRITE_TIMEOUT", "8ms", "more than half of BQ_WRITE_TIMEOUT 8ms"},
		{"LOG_LEVEL", "chatty", "not one of"},
		{"METADATA_URI", "", "is required"},
		{"METADATA_URI", "gs://device-metadata", "not gs://bucket/object"},
		{"METADATA_URI", "gs://device-metadata/", "not gs://bucket/object"},
		{"MAX_REQUEST_BYTES", "67108864", "over 33554432, the largest request Cloud Run accepts"},
	}
	for _, tt := range tests {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			m := map[string]string{"METADATA_URI": "gs://b/o", tt.name: tt.value}
			_, err := loadConfig(env(m))
			if err == nil || !strings.Contains(err.Error(), tt.name) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("loadConfig(%s=%q) = %v, want an error naming %s and saying %q", tt.name, tt.value, err, tt.name, tt.want)
			}
		})
	}
}

func TestLoadConfigReportsEveryBadVariable(t *testing.T) {
	_, err := loadConfig(env(map[string]string{"METADATA_TTL": "x", "LOG_LEVEL": "y"}))
	for _, name := range []string{"METADATA_URI", "METADATA_TTL", "LOG_LEVEL"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("loadConfig error %v does not name %s", err, name)
		}
	}
}

// TestDeployedConfigCheckCoversBuildErrors: on Cloud Run, a configuration
// that could never build the function fails at start (checkDeployedConfig),
// not on the first request: that request's 500 would come after the new
// revision took the traffic. Each case once passed the check.
func TestDeployedConfigCheckCoversBuildErrors(t *testing.T) {
	for _, tc := range []struct {
		vars map[string]string
		want string
	}{
		{map[string]string{"METADATA_URI": "gs://device-metadata", "BQ_TABLE": "p.d.events"}, "METADATA_URI"},
		{map[string]string{"METADATA_URI": "testdata/devices.csv", "BQ_TABLE": "p.d.events", "BQ_ERROR_TABLE": "events"}, "BQ_ERROR_TABLE \"events\" is BQ_TABLE's own table"},
		{map[string]string{"METADATA_URI": "testdata/devices.csv"}, "BQ_TABLE is required on Cloud Run"},
	} {
		getenv := func(k string) string {
			if k == "K_SERVICE" {
				return "enrich-event"
			}
			return tc.vars[k]
		}
		if err := checkDeployedConfig(getenv); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v on Cloud Run: start-up check %v, want an error saying %q", tc.vars, err, tc.want)
		}
	}
	// Off Cloud Run, rows may go to stdout.
	if _, err := loadConfig(env(map[string]string{"METADATA_URI": "testdata/devices.csv"})); err != nil {
		t.Errorf("no BQ_TABLE off Cloud Run: %v", err)
	}
}

// TestLoadConfigEmulatorsTogether: the BigQuery emulator's two addresses
// (REST and gRPC) are set together or not at all.
func TestLoadConfigEmulatorsTogether(t *testing.T) {
	for _, name := range []string{"BIGQUERY_EMULATOR_HOST", "BIGQUERY_STORAGE_EMULATOR_HOST"} {
		_, err := loadConfig(env(map[string]string{"METADATA_URI": "gs://b/o", "BQ_TABLE": "p.d.t", name: "127.0.0.1:9050"}))
		if err == nil || !strings.Contains(err.Error(), "set both or neither") {
			t.Errorf("only %s set: %v, want an error saying to set both or neither", name, err)
		}
	}
	both := map[string]string{"METADATA_URI": "gs://b/o", "BQ_TABLE": "p.d.t",
		"BIGQUERY_EMULATOR_HOST": "127.0.0.1:9050", "BIGQUERY_STORAGE_EMULATOR_HOST": "127.0.0.1:9060"}
	if _, err := loadConfig(env(both)); err != nil {
		t.Errorf("both set: %v", err)
	}
}
