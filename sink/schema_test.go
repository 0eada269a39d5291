package sink

import (
	"testing"

	"cloud.google.com/go/bigquery"
)

// column is what the issue requires of one column.
type column struct {
	typ      bigquery.FieldType
	required bool
	repeated bool
}

func checkColumns(t *testing.T, table string, schema bigquery.Schema, want map[string]column) {
	t.Helper()
	got := make(map[string]column, len(schema))
	for _, f := range schema {
		got[f.Name] = column{f.Type, f.Required, f.Repeated}
	}
	for name, w := range want {
		if g, ok := got[name]; !ok || g != w {
			t.Errorf("%s column %s = %+v (present %v), want %+v", table, name, g, ok, w)
		}
	}
}

func TestRowsSchema(t *testing.T) {
	s, err := RowsSchema()
	if err != nil {
		t.Fatalf("RowsSchema: %v", err)
	}
	checkColumns(t, "rows", s.BigQuery, map[string]column{
		"message_id":         {bigquery.StringFieldType, true, false},
		"publish_time":       {bigquery.TimestampFieldType, true, false},
		"event_time":         {bigquery.TimestampFieldType, true, false},
		"ingest_time":        {bigquery.TimestampFieldType, true, false},
		"metadata_loaded_at": {bigquery.TimestampFieldType, false, false},
		"payload":            {bigquery.JSONFieldType, true, false},
		"attributes":         {bigquery.JSONFieldType, false, false},
		"device_metadata":    {bigquery.JSONFieldType, false, false},
		"metadata_version":   {bigquery.IntegerFieldType, false, false},
	})
	if s.Descriptor.GetName() == "" || s.Message.Fields().Len() != len(s.BigQuery) {
		t.Errorf("RowsSchema descriptor %v has %d fields, want one per column (%d)",
			s.Descriptor.GetName(), s.Message.Fields().Len(), len(s.BigQuery))
	}
}

func TestErrorRecordsSchema(t *testing.T) {
	s, err := ErrorRecordsSchema()
	if err != nil {
		t.Fatalf("ErrorRecordsSchema: %v", err)
	}
	// The Dataflow Pub/Sub-to-BigQuery dead-letter columns, then ours.
	want := []string{"timestamp", "payloadString", "payloadBytes", "attributes", "errorMessage", "stacktrace",
		"message_id", "subscription", "reason"}
	var names []string
	for _, f := range s.BigQuery {
		names = append(names, f.Name)
	}
	if len(names) != len(want) {
		t.Errorf("error-records columns = %v, want %v", names, want)
	}
	checkColumns(t, "error_records", s.BigQuery, map[string]column{
		"timestamp":     {bigquery.TimestampFieldType, true, false},
		"payloadString": {bigquery.StringFieldType, true, false},
		"payloadBytes":  {bigquery.BytesFieldType, true, false},
		"attributes":    {bigquery.RecordFieldType, false, true},
		"errorMessage":  {bigquery.StringFieldType, false, false},
		"stacktrace":    {bigquery.StringFieldType, false, false},
		"message_id":    {bigquery.StringFieldType, false, false},
		"subscription":  {bigquery.StringFieldType, false, false},
		"reason":        {bigquery.StringFieldType, false, false},
	})
	for _, f := range s.BigQuery {
		if f.Name == "attributes" {
			checkColumns(t, "error_records.attributes", f.Schema, map[string]column{
				"key":   {bigquery.StringFieldType, false, false},
				"value": {bigquery.StringFieldType, false, false},
			})
		}
	}
}
