package enrichevent

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"cloud.google.com/go/storage"

	"github.com/devicestream/enrichevent/cache"
	"github.com/devicestream/enrichevent/enrich"
	"github.com/devicestream/enrichevent/sink"
)

// SampleMetadataURI is the METADATA_URI of the sample metadata compiled
// into the binary (testdata/devices.csv): the local runner's default.
const SampleMetadataURI = "embedded:testdata/devices.csv"

//go:embed testdata/devices.csv
var sampleMetadata embed.FS

// newFunction wires a function from its configuration. Rows go to stdout
// when no BigQuery table is configured; logs go to stderr.
func newFunction(ctx context.Context, cfg config, stdout, stderr io.Writer) (*function, error) {
	log := newLogger(stderr, cfg.logLevel)
	src, err := newSource(ctx, cfg.metadataURI)
	if err != nil {
		return nil, err
	}
	snk, err := newSink(ctx, cfg, stdout, log)
	if err != nil {
		return nil, err
	}
	memLimit := debug.SetMemoryLimit(-1)
	return &function{
		log:     log,
		project: cfg.project,
		maxBody: cfg.maxRequestBytes,
		bodies:  newBodyBudget(largeBodyBudget(cfg.maxRequestBytes, memLimit)),
		opts: enrich.Options{
			DeviceIDField:   cfg.deviceIDField,
			EventTimeField:  cfg.eventTimeField,
			MaxPayloadBytes: cfg.maxPayloadBytes,
		},
		meta: cache.New(cache.Config[*enrich.Devices]{
			Source:       src,
			Parse:        metadataParser(memLimit),
			Size:         (*enrich.Devices).Len,
			Describe:     describeMetadata,
			TTL:          cfg.metadataTTL,
			MaxStaleness: cfg.metadataMaxStaleness,
			MaxShrink:    cfg.metadataMaxShrink,
			ShrinkWait:   cfg.metadataShrinkWait,
			MissInterval: cfg.missRefreshInterval,
			Logger:       log,
		}),
		sink: snk,
		now:  time.Now,
	}, nil
}

// newSource returns the metadata source METADATA_URI names.
func newSource(ctx context.Context, uri string) (cache.Source, error) {
	if uri == SampleMetadataURI {
		return cache.NewFileSource(sampleMetadata, strings.TrimPrefix(uri, "embedded:")), nil
	}
	if strings.HasPrefix(uri, "gs://") {
		bucket, object, ok := cache.ParseGCSURI(uri)
		if !ok {
			return nil, fmt.Errorf("METADATA_URI %q is not gs://bucket/object", uri)
		}
		// JSON reads: the XML reader does not work with fake-gcs-server
		// (STORAGE_EMULATOR_HOST), and both work against GCS.
		client, err := storage.NewClient(ctx, storage.WithJSONReads())
		if err != nil {
			return nil, fmt.Errorf("storage client for METADATA_URI: %w", err)
		}
		return cache.NewGCSSource(client, bucket, object), nil
	}
	// A file that is not there (yet) fails the first load, which is tried
	// again a second later, as for GCS; checkLocalMetadata is for the
	// local runner.
	abs, err := filepath.Abs(uri)
	if err != nil {
		return nil, fmt.Errorf("METADATA_URI %q: %w", uri, err)
	}
	return cache.NewFileSource(os.DirFS(filepath.Dir(abs)), filepath.Base(abs)), nil
}

// checkLocalMetadata reports a METADATA_URI naming a local file that
// cannot be read now. Only the local runner checks, and exits: a deployed
// instance answers 500 and tries again, as for an object not in GCS yet.
func checkLocalMetadata(uri string) error {
	if uri == SampleMetadataURI || strings.HasPrefix(uri, "gs://") {
		return nil
	}
	if _, err := os.Stat(uri); err != nil {
		return fmt.Errorf("METADATA_URI %q: %w", uri, err)
	}
	return nil
}

// newSink returns the BigQuery sink when BQ_TABLE is set, else JSON lines
// on stdout.
func newSink(ctx context.Context, cfg config, stdout io.Writer, log *slog.Logger) (sink.Sink, error) {
	if cfg.bqTable == "" {
		return sink.NewStdout(stdout), nil
	}
	bqc := sink.BigQueryConfig{
		Project:       cfg.bqProject,
		Dataset:       cfg.bqDataset,
		Table:         cfg.bqTable,
		ErrorTable:    cfg.bqErrorTable,
		BatchMaxRows:  cfg.bqBatchMaxRows,
		BatchMaxDelay: cfg.bqBatchMaxDelay,
		WriteTimeout:  cfg.bqWriteTimeout,
		GRPCEndpoint:  cfg.bqStorageEmulatorHost,
		Logger:        log,
	}
	if cfg.bqEmulatorHost != "" {
		bqc.RESTEndpoint = "http://" + strings.TrimPrefix(cfg.bqEmulatorHost, "http://")
	}
	return sink.NewBigQuery(ctx, bqc)
}

// metadataParser returns the cache's Parse under a Go memory limit of
// memLimit bytes (math.MaxInt64 for none): a devices table of at most
// metadataTableLimit(memLimit), whose error says where the limit comes from.
func metadataParser(memLimit int64) func(io.Reader, cache.Version) (*enrich.Devices, error) {
	maxBytes := metadataTableLimit(memLimit)
	why := "the limit is 45% of the Go memory limit (GOMEMLIMIT, which deploy.sh sets to 80% of --memory): deploy with more memory"
	if memLimit == math.MaxInt64 {
		why = "the limit is 1 GiB without a Go memory limit (GOMEMLIMIT)"
	}
	return func(r io.Reader, v cache.Version) (*enrich.Devices, error) {
		hint := enrich.FormatHint{Name: v.Name, ContentType: v.ContentType, ContentEncoding: v.ContentEncoding}
		d, err := enrich.ParseMetadataWithin(r, hint, maxBytes)
		if errors.Is(err, enrich.ErrTableTooLarge) {
			err = fmt.Errorf("%w: %s", err, why)
		}
		return d, err
	}
}

// metadataTableLimit is the most a devices table may keep under a Go
// memory limit of memLimit bytes (math.MaxInt64 for none): 45 % of it,
// since a refresh holds two tables (a million devices of the sample's
// columns keep 163 MiB, and deploy.sh's 512Mi instance has a limit of
// 409 MiB); 1 GiB without a limit. A larger file fails its load (and the
// last good table stays) instead of getting the instance killed for
// memory at every start.
func metadataTableLimit(memLimit int64) int64 {
	if memLimit == math.MaxInt64 {
		return 1 << 30
	}
	return memLimit / 100 * 45
}

func describeMetadata(d *enrich.Devices) []slog.Attr {
	s := d.Stats()
	return []slog.Attr{
		slog.String("format", string(s.Format)),
		slog.Int("rows", s.Rows),
		slog.Int("blank_ids", s.Blank),
		slog.Int("duplicate_ids", s.Duplicates),
		slog.Int64("table_bytes", d.Bytes()),
	}
}
