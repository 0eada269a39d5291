package enrichevent

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/devicestream/enrichevent/cache"
)

// config is the function's whole configuration, read once from the
// environment by loadConfig. Nothing else reads the environment.
type config struct {
	metadataURI          string // gs://bucket/object, a local path, or embeddedURI
	metadataTTL          time.Duration
	metadataMaxStaleness time.Duration
	metadataMaxShrink    float64
	metadataShrinkWait   time.Duration
	missRefreshInterval  time.Duration

	deviceIDField   string
	eventTimeField  string
	maxPayloadBytes int
	maxRequestBytes int64

	bqProject, bqDataset, bqTable string // empty bqTable: the stdout sink
	bqErrorTable                  string
	bqBatchMaxRows                int
	bqBatchMaxDelay               time.Duration
	bqWriteTimeout                time.Duration
	bqEmulatorHost                string // BIGQUERY_EMULATOR_HOST: REST, no auth
	bqStorageEmulatorHost         string // BIGQUERY_STORAGE_EMULATOR_HOST: gRPC, no auth, no TLS

	logLevel   slog.Level
	project    string // for trace ids in logs: GOOGLE_CLOUD_PROJECT, else BQ_TABLE's project
	onCloudRun bool   // K_SERVICE is set: SIGTERM drains the requests in flight
}

// defaultMaxRequestBytes admits the push envelope of the largest message
// Pub/Sub accepts: 10 MB of data is 13.3 MB in base64, and its attributes
// (100 of up to 1,280 bytes) may take up to six times their size as
// escaped JSON.
const defaultMaxRequestBytes = 16 << 20

// maxCloudRunRequest is the largest request Cloud Run accepts (HTTP/1).
const maxCloudRunRequest = 32 << 20

// loadConfig reads the configuration through getenv (os.Getenv outside
// tests). Every problem is reported, each naming its variable.
func loadConfig(getenv func(string) string) (config, error) {
	p := envParser{getenv: getenv}
	c := config{
		metadataURI:           p.str("METADATA_URI", ""),
		metadataTTL:           p.duration("METADATA_TTL", time.Hour),
		metadataMaxStaleness:  p.duration("METADATA_MAX_STALENESS", 24*time.Hour),
		metadataMaxShrink:     p.fraction("METADATA_MAX_SHRINK", 0.5),
		metadataShrinkWait:    p.duration("METADATA_SHRINK_WAIT", time.Hour),
		missRefreshInterval:   p.duration("METADATA_MISS_REFRESH_INTERVAL", time.Minute),
		deviceIDField:         p.str("DEVICE_ID_FIELD", "device_id"),
		eventTimeField:        p.str("EVENT_TIME_FIELD", "event_time"),
		maxPayloadBytes:       p.positiveInt("MAX_PAYLOAD_BYTES", 1<<20),
		maxRequestBytes:       int64(p.positiveInt("MAX_REQUEST_BYTES", defaultMaxRequestBytes)),
		bqErrorTable:          p.str("BQ_ERROR_TABLE", ""),
		bqBatchMaxRows:        p.positiveInt("BQ_BATCH_MAX_ROWS", 500),
		bqBatchMaxDelay:       p.duration("BQ_BATCH_MAX_DELAY", 5*time.Millisecond),
		bqWriteTimeout:        p.duration("BQ_WRITE_TIMEOUT", 30*time.Second),
		bqEmulatorHost:        p.str("BIGQUERY_EMULATOR_HOST", ""),
		bqStorageEmulatorHost: p.str("BIGQUERY_STORAGE_EMULATOR_HOST", ""),
		logLevel:              p.level("LOG_LEVEL", slog.LevelInfo),
		project:               p.str("GOOGLE_CLOUD_PROJECT", ""),
		onCloudRun:            p.str("K_SERVICE", "") != "",
	}
	if c.metadataURI == "" {
		p.fail("METADATA_URI", "is required: gs://bucket/object or a local path")
	} else if _, _, ok := cache.ParseGCSURI(c.metadataURI); !ok && strings.HasPrefix(c.metadataURI, "gs://") {
		p.fail("METADATA_URI", fmt.Sprintf("%q is not gs://bucket/object", c.metadataURI))
	}
	if table := p.str("BQ_TABLE", ""); table != "" {
		parts := strings.Split(table, ".")
		if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
			p.fail("BQ_TABLE", fmt.Sprintf("%q is not project.dataset.table", table))
		} else {
			c.bqProject, c.bqDataset, c.bqTable = parts[0], parts[1], parts[2]
		}
	}
	if strings.ContainsAny(c.bqErrorTable, ".:/") {
		p.fail("BQ_ERROR_TABLE", fmt.Sprintf("%q is not a table id: the error-records table is in BQ_TABLE's dataset, so give its id only, such as events_errors", c.bqErrorTable))
	} else if c.bqErrorTable != "" && c.bqErrorTable == c.bqTable {
		p.fail("BQ_ERROR_TABLE", fmt.Sprintf("%q is BQ_TABLE's own table: error records need a table of their own", c.bqErrorTable))
	}
	if c.bqTable != "" && (c.bqEmulatorHost == "") != (c.bqStorageEmulatorHost == "") {
		// The sink looks tables up over REST and appends over gRPC: one
		// without the other would send half its calls to real BigQuery.
		p.fail("BIGQUERY_EMULATOR_HOST", "and BIGQUERY_STORAGE_EMULATOR_HOST go together: set both or neither")
	}
	if c.onCloudRun && c.bqTable == "" {
		p.fail("BQ_TABLE", "is required on Cloud Run: without it rows are only printed to the log")
	}
	if c.project == "" {
		c.project = c.bqProject
	}
	if c.maxRequestBytes > maxCloudRunRequest {
		p.fail("MAX_REQUEST_BYTES", fmt.Sprintf("%d is over %d, the largest request Cloud Run accepts: "+
			"a larger limit only lets more large bodies in at once, in the same memory", c.maxRequestBytes, maxCloudRunRequest))
	}
	if c.maxRequestBytes < defaultMaxRequestBytes {
		p.fail("MAX_REQUEST_BYTES", fmt.Sprintf("%d is below %d, the push envelope of the largest message Pub/Sub accepts: "+
			"a lower limit refuses such a message on every delivery until it is dead-lettered", c.maxRequestBytes, defaultMaxRequestBytes))
	}
	if c.bqBatchMaxDelay > c.bqWriteTimeout/2 {
		// The timeout runs from when a batch opens, so a batch that waits
		// this long for rows has little or no time left for its appends:
		// every write would fail, and every event be redelivered.
		p.fail("BQ_BATCH_MAX_DELAY", fmt.Sprintf("%v is more than half of BQ_WRITE_TIMEOUT %v, which bounds a batch's appends from when it opens", c.bqBatchMaxDelay, c.bqWriteTimeout))
	}
	if c.metadataMaxStaleness < c.metadataTTL {
		// (A TTL over half the staleness is lowered to that by the cache,
		// so that a refresh has time in the background.)
		p.fail("METADATA_MAX_STALENESS", fmt.Sprintf("%v is shorter than METADATA_TTL %v", c.metadataMaxStaleness, c.metadataTTL))
	}
	return c, errors.Join(p.errs...)
}

// envParser parses variables and collects one error per bad variable.
type envParser struct {
	getenv func(string) string
	errs   []error
}

func (p *envParser) fail(name, problem string) {
	p.errs = append(p.errs, fmt.Errorf("%s %s", name, problem))
}

func (p *envParser) str(name, def string) string {
	if v := strings.TrimSpace(p.getenv(name)); v != "" {
		return v
	}
	return def
}

func (p *envParser) duration(name string, def time.Duration) time.Duration {
	s := p.str(name, "")
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		p.fail(name, fmt.Sprintf("%q is not a positive duration such as 90s, 5m or 1h", s))
		return def
	}
	return d
}

func (p *envParser) positiveInt(name string, def int) int {
	s := p.str(name, "")
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		p.fail(name, fmt.Sprintf("%q is not a positive integer", s))
		return def
	}
	return n
}

func (p *envParser) fraction(name string, def float64) float64 {
	s := p.str(name, "")
	if s == "" {
		return def
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f <= 0 || f > 1 {
		p.fail(name, fmt.Sprintf("%q is not a fraction in (0, 1]", s))
		return def
	}
	return f
}

func (p *envParser) level(name string, def slog.Level) slog.Level {
	s := p.str(name, "")
	if s == "" {
		return def
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		p.fail(name, fmt.Sprintf("%q is not one of debug, info, warn, error", s))
		return def
	}
	return l
}
