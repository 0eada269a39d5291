package enrich

import (
	"encoding/json"
	"time"
)

// Row is one enriched event, shaped like the rows table
// (sink/schema/rows.json). JSON columns hold raw JSON text.
type Row struct {
	MessageID        string          `json:"message_id"`
	Subscription     string          `json:"subscription,omitempty"`
	PublishTime      time.Time       `json:"publish_time"`
	EventTime        time.Time       `json:"event_time"`
	DeviceID         string          `json:"device_id"`
	DeviceFound      bool            `json:"device_found"`
	AssetTag         string          `json:"asset_tag"`
	LocationID       string          `json:"location_id"`
	TenantName       string          `json:"tenant_name"`
	DeviceMetadata   json.RawMessage `json:"device_metadata"`
	Payload          json.RawMessage `json:"payload"`
	Attributes       json.RawMessage `json:"attributes"`
	MetadataVersion  int64           `json:"metadata_version"`
	MetadataLoadedAt time.Time       `json:"metadata_loaded_at"`
	IngestTime       time.Time       `json:"ingest_time"`
}

// ErrorRecord is a message that can never become a row, shaped like the
// error-records table (sink/schema/error_records.json), whose columns match
// the dead-letter table of Google's Dataflow Pub/Sub-to-BigQuery template.
type ErrorRecord struct {
	Timestamp    time.Time         `json:"timestamp"`
	Payload      []byte            `json:"payload"` // the raw bytes: message data, or the whole body if it did not decode
	Attributes   map[string]string `json:"attributes,omitempty"`
	MessageID    string            `json:"message_id,omitempty"`
	Subscription string            `json:"subscription,omitempty"`
	Reason       Reason            `json:"reason"`
	ErrorMessage string            `json:"error_message"`
}
