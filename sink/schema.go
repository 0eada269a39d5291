package sink

import (
	"embed"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"

	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

// schemaFiles holds the BigQuery JSON schema files: the single source of
// truth for both tables, also read by deploy.sh (bq mk --schema) and tests.
//
//go:embed schema/*.json
var schemaFiles embed.FS

// TableSchema is one table's schema in every form the writer needs. The
// values are shared: callers must not modify them.
type TableSchema struct {
	// JSON is the schema file itself, for bigquery.SchemaFromJSON or
	// bq mk --schema.
	JSON []byte
	// Columns is the schema as parsed from the file.
	Columns []Column
	// Descriptor is the normalized proto2 descriptor that the writer sends
	// as its writer schema (managedwriter.WithSchemaDescriptor).
	Descriptor *descriptorpb.DescriptorProto
	// Message describes the encoded rows; fields are numbered in column
	// order, starting at 1.
	Message protoreflect.MessageDescriptor
}

// Column is one column of a BigQuery JSON schema file. Type and Mode are
// upper case; an empty Mode is NULLABLE.
type Column struct {
	Name   string   `json:"name"`
	Type   string   `json:"type"`
	Mode   string   `json:"mode"`
	Fields []Column `json:"fields"` // a RECORD's columns
}

var (
	rowsSchema   = sync.OnceValues(func() (*TableSchema, error) { return loadSchema("schema/rows.json") })
	errorsSchema = sync.OnceValues(func() (*TableSchema, error) { return loadSchema("schema/error_records.json") })
)

// RowsSchema returns the schema of the enriched-rows table, from
// sink/schema/rows.json.
func RowsSchema() (*TableSchema, error) { return rowsSchema() }

// ErrorRecordsSchema returns the schema of the error-records table, from
// sink/schema/error_records.json. Its columns are those of the dead-letter
// table of Google's Dataflow Pub/Sub-to-BigQuery template, plus message_id,
// subscription and reason.
func ErrorRecordsSchema() (*TableSchema, error) { return errorsSchema() }

// loadSchema parses an embedded schema file and builds its descriptor.
func loadSchema(name string) (*TableSchema, error) {
	data, err := schemaFiles.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	cols, err := parseColumns(data)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", name, err)
	}
	dp, err := descriptorFor(cols)
	if err != nil {
		return nil, fmt.Errorf("descriptor for %s: %w", name, err)
	}
	msg, err := messageFromDescriptor(dp)
	if err != nil {
		return nil, fmt.Errorf("descriptor for %s: %w", name, err)
	}
	return &TableSchema{JSON: data, Columns: cols, Descriptor: dp, Message: msg}, nil
}

// parseColumns parses a BigQuery JSON schema file: an array of columns.
func parseColumns(data []byte) ([]Column, error) {
	var cols []Column
	if err := json.Unmarshal(data, &cols); err != nil {
		return nil, err
	}
	if len(cols) == 0 {
		return nil, fmt.Errorf("no columns")
	}
	var upper func([]Column)
	upper = func(cols []Column) {
		for i := range cols {
			cols[i].Type, cols[i].Mode = strings.ToUpper(cols[i].Type), strings.ToUpper(cols[i].Mode)
			upper(cols[i].Fields)
		}
	}
	upper(cols)
	return cols, nil
}

// The building of the writer schema below gives what the managedwriter
// documentation's recipe gives (adapt.BQSchemaToStorageTableSchema, then
// adapt.StorageSchemaToProto2Descriptor with scope "root", then
// adapt.NormalizeDescriptor), as TestDescriptorMatchesAdapt checks, without
// importing adapt: adapt imports cloud.google.com/go/bigquery, whose
// dependencies (Arrow, a JSON library's tables) cost every instance about
// 3 ms of init and 4 MB of heap that each GC cycle scans.

// protoTypes maps a column type to its proto2 field type in the Storage
// Write API's encoding: TIMESTAMP is int64 microseconds, JSON is text.
var protoTypes = map[string]descriptorpb.FieldDescriptorProto_Type{
	"STRING":    descriptorpb.FieldDescriptorProto_TYPE_STRING,
	"JSON":      descriptorpb.FieldDescriptorProto_TYPE_STRING,
	"GEOGRAPHY": descriptorpb.FieldDescriptorProto_TYPE_STRING,
	"BYTES":     descriptorpb.FieldDescriptorProto_TYPE_BYTES,
	"BOOLEAN":   descriptorpb.FieldDescriptorProto_TYPE_BOOL,
	"BOOL":      descriptorpb.FieldDescriptorProto_TYPE_BOOL,
	"INTEGER":   descriptorpb.FieldDescriptorProto_TYPE_INT64,
	"INT64":     descriptorpb.FieldDescriptorProto_TYPE_INT64,
	"TIMESTAMP": descriptorpb.FieldDescriptorProto_TYPE_INT64,
	"DATETIME":  descriptorpb.FieldDescriptorProto_TYPE_INT64,
	"TIME":      descriptorpb.FieldDescriptorProto_TYPE_INT64,
	"DATE":      descriptorpb.FieldDescriptorProto_TYPE_INT32,
	"FLOAT":     descriptorpb.FieldDescriptorProto_TYPE_DOUBLE,
	"FLOAT64":   descriptorpb.FieldDescriptorProto_TYPE_DOUBLE,
}

// protoLabels maps a column mode to its proto2 label.
var protoLabels = map[string]descriptorpb.FieldDescriptorProto_Label{
	"":         descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL,
	"NULLABLE": descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL,
	"REQUIRED": descriptorpb.FieldDescriptorProto_LABEL_REQUIRED,
	"REPEATED": descriptorpb.FieldDescriptorProto_LABEL_REPEATED,
}

// descriptorFor returns the normalized descriptor of a table of cols: a
// message "root" with one field per column, numbered from 1, and each
// RECORD's message nested in root, named by its path ("root__attributes"),
// in the order of their names.
// It refuses what the tables here do not need: repeated scalars (which
// would be packed), and names that are not proto identifiers (which need
// annotations).
func descriptorFor(cols []Column) (*descriptorpb.DescriptorProto, error) {
	root := &descriptorpb.DescriptorProto{Name: new("root")}
	var build func(msg *descriptorpb.DescriptorProto, scope string, cols []Column) error
	build = func(msg *descriptorpb.DescriptorProto, scope string, cols []Column) error {
		for i, c := range cols {
			if !protoreflect.Name(c.Name).IsValid() {
				return fmt.Errorf("column %q: not a proto field name", c.Name)
			}
			label, ok := protoLabels[c.Mode]
			if !ok {
				return fmt.Errorf("column %q: unknown mode %q", c.Name, c.Mode)
			}
			f := &descriptorpb.FieldDescriptorProto{Name: new(c.Name), Number: new(int32(i + 1)), Label: label.Enum()}
			switch typ, ok := protoTypes[c.Type]; {
			case c.Type == "RECORD":
				nested := &descriptorpb.DescriptorProto{Name: new(scope + "__" + c.Name)}
				if err := build(nested, nested.GetName(), c.Fields); err != nil {
					return err
				}
				root.NestedType = append(root.NestedType, nested)
				f.Type, f.TypeName = descriptorpb.FieldDescriptorProto_TYPE_MESSAGE.Enum(), nested.Name
			case !ok:
				return fmt.Errorf("column %q: unsupported type %q", c.Name, c.Type)
			case c.Mode == "REPEATED":
				return fmt.Errorf("column %q: repeated %s columns are not supported", c.Name, c.Type)
			default:
				f.Type = typ.Enum()
			}
			msg.Field = append(msg.Field, f)
		}
		return nil
	}
	if err := build(root, "root", cols); err != nil {
		return nil, err
	}
	slices.SortStableFunc(root.NestedType, func(a, b *descriptorpb.DescriptorProto) int {
		return strings.Compare(a.GetName(), b.GetName())
	})
	return root, nil
}

// messageFromDescriptor resolves a self-contained DescriptorProto, as sent
// in an AppendRows writer schema, into a message descriptor.
func messageFromDescriptor(dp *descriptorpb.DescriptorProto) (protoreflect.MessageDescriptor, error) {
	fdp := &descriptorpb.FileDescriptorProto{
		Name:        new("writer_schema.proto"),
		Syntax:      new("proto2"),
		MessageType: []*descriptorpb.DescriptorProto{dp},
	}
	fd, err := protodesc.NewFile(fdp, nil)
	if err != nil {
		return nil, fmt.Errorf("resolve writer schema: %w", err)
	}
	return fd.Messages().Get(0), nil
}
