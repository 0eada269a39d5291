package sink

import (
	"strings"
	"testing"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/bigquery/storage/managedwriter/adapt"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

// column is what the issue requires of one column.
type column struct {
	typ      bigquery.FieldType
	required bool
	repeated bool
}

// officialSchema parses a schema file with the BigQuery client's own
// parser, which the function does not import (see descriptorFor).
func officialSchema(t *testing.T, s *TableSchema) bigquery.Schema {
	t.Helper()
	schema, err := bigquery.SchemaFromJSON(s.JSON)
	if err != nil {
		t.Fatalf("bigquery.SchemaFromJSON: %v", err)
	}
	return schema
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
	checkColumns(t, "rows", officialSchema(t, s), map[string]column{
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
	if s.Descriptor.GetName() == "" || s.Message.Fields().Len() != len(s.Columns) {
		t.Errorf("RowsSchema descriptor %v has %d fields, want one per column (%d)",
			s.Descriptor.GetName(), s.Message.Fields().Len(), len(s.Columns))
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
	official := officialSchema(t, s)
	var names []string
	for _, f := range official {
		names = append(names, f.Name)
	}
	if len(names) != len(want) {
		t.Errorf("error-records columns = %v, want %v", names, want)
	}
	checkColumns(t, "error_records", official, map[string]column{
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
	for _, f := range official {
		if f.Name == "attributes" {
			checkColumns(t, "error_records.attributes", f.Schema, map[string]column{
				"key":   {bigquery.StringFieldType, false, false},
				"value": {bigquery.StringFieldType, false, false},
			})
		}
	}
}

// adaptMessage is the message descriptor that the managedwriter
// documentation's recipe builds from a schema, with the client's own
// packages, before it is normalized.
func adaptMessage(t *testing.T, schema bigquery.Schema) protoreflect.MessageDescriptor {
	t.Helper()
	storage, err := adapt.BQSchemaToStorageTableSchema(schema)
	if err != nil {
		t.Fatal(err)
	}
	d, err := adapt.StorageSchemaToProto2Descriptor(storage, "root")
	if err != nil {
		t.Fatal(err)
	}
	return d.(protoreflect.MessageDescriptor)
}

// adaptDescriptor is the writer schema that recipe builds from a schema
// file: adaptMessage, normalized.
func adaptDescriptor(t *testing.T, schemaJSON []byte) *descriptorpb.DescriptorProto {
	t.Helper()
	schema, err := bigquery.SchemaFromJSON(schemaJSON)
	if err != nil {
		t.Fatal(err)
	}
	dp, err := adapt.NormalizeDescriptor(adaptMessage(t, schema))
	if err != nil {
		t.Fatal(err)
	}
	return dp
}

// TestDescriptorMatchesAdapt holds descriptorFor to adapt's recipe: for
// both tables, and for a schema of every type it supports, with records
// nested two deep.
func TestDescriptorMatchesAdapt(t *testing.T) {
	rows, _ := RowsSchema()
	errs, _ := ErrorRecordsSchema()
	every := []byte(`[
	  {"name": "s", "type": "STRING", "mode": "REQUIRED"}, {"name": "j", "type": "JSON"},
	  {"name": "g", "type": "GEOGRAPHY"}, {"name": "b", "type": "BYTES", "mode": "nullable"},
	  {"name": "t", "type": "BOOLEAN"}, {"name": "t2", "type": "BOOL"}, {"name": "i", "type": "INTEGER"},
	  {"name": "i2", "type": "INT64"}, {"name": "ts", "type": "TIMESTAMP"}, {"name": "dt", "type": "DATETIME"},
	  {"name": "tm", "type": "TIME"}, {"name": "d", "type": "DATE"}, {"name": "f", "type": "FLOAT"},
	  {"name": "f2", "type": "FLOAT64"},
	  {"name": "r", "type": "RECORD", "mode": "REPEATED", "fields": [
	    {"name": "k", "type": "STRING"},
	    {"name": "inner", "type": "RECORD", "fields": [{"name": "n", "type": "INTEGER", "mode": "REQUIRED"}]}
	  ]},
	  {"name": "other", "type": "RECORD", "fields": [{"name": "x", "type": "STRING"}]}
	]`)
	for name, data := range map[string][]byte{"rows": rows.JSON, "error_records": errs.JSON, "every type": every} {
		t.Run(name, func(t *testing.T) {
			cols, err := parseColumns(data)
			if err != nil {
				t.Fatal(err)
			}
			got, err := descriptorFor(cols)
			if err != nil {
				t.Fatal(err)
			}
			if want := adaptDescriptor(t, data); !proto.Equal(got, want) {
				t.Errorf("descriptorFor:\n%v\nadapt:\n%v", prototext.Format(got), prototext.Format(want))
			}
		})
	}
}

// TestDescriptorRefuses shows what descriptorFor leaves to adapt's recipe:
// repeated scalars (packed) and names that need annotations.
func TestDescriptorRefuses(t *testing.T) {
	for _, tt := range []struct{ schema, want string }{
		{`[{"name": "n", "type": "INTEGER", "mode": "REPEATED"}]`, `repeated INTEGER`},
		{`[{"name": "a-b", "type": "STRING"}]`, `not a proto field name`},
		{`[{"name": "n", "type": "NUMERIC"}]`, `unsupported type "NUMERIC"`},
		{`[{"name": "n", "type": "STRING", "mode": "OPTIONAL"}]`, `unknown mode "OPTIONAL"`},
	} {
		cols, err := parseColumns([]byte(tt.schema))
		if err == nil {
			_, err = descriptorFor(cols)
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("descriptor of %s = %v, want an error containing %q", tt.schema, err, tt.want)
		}
	}
}
