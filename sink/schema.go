package sink

import (
	"embed"
	"fmt"
	"sync"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/bigquery/storage/apiv1/storagepb"
	"cloud.google.com/go/bigquery/storage/managedwriter/adapt"
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
	// BigQuery is the schema as parsed from the JSON file.
	BigQuery bigquery.Schema
	// Storage is the same schema in the Storage Write API's form.
	Storage *storagepb.TableSchema
	// Descriptor is the normalized proto2 descriptor that the writer sends
	// as its writer schema (managedwriter.WithSchemaDescriptor).
	Descriptor *descriptorpb.DescriptorProto
	// Message describes the encoded rows; fields are numbered in column
	// order, starting at 1.
	Message protoreflect.MessageDescriptor
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

// loadSchema parses an embedded schema file and derives the proto forms the
// way the managedwriter documentation does.
func loadSchema(name string) (*TableSchema, error) {
	data, err := schemaFiles.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	bq, err := bigquery.SchemaFromJSON(data)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", name, err)
	}
	storage, err := adapt.BQSchemaToStorageTableSchema(bq)
	if err != nil {
		return nil, fmt.Errorf("convert %s: %w", name, err)
	}
	d, err := adapt.StorageSchemaToProto2Descriptor(storage, "root")
	if err != nil {
		return nil, fmt.Errorf("descriptor for %s: %w", name, err)
	}
	md, ok := d.(protoreflect.MessageDescriptor)
	if !ok {
		return nil, fmt.Errorf("descriptor for %s: got %T, want a message descriptor", name, d)
	}
	dp, err := adapt.NormalizeDescriptor(md)
	if err != nil {
		return nil, fmt.Errorf("normalize descriptor for %s: %w", name, err)
	}
	// Encode against the normalized descriptor, the one BigQuery decodes
	// with, rather than adapt's intermediate one.
	msg, err := messageFromDescriptor(dp)
	if err != nil {
		return nil, fmt.Errorf("descriptor for %s: %w", name, err)
	}
	return &TableSchema{BigQuery: bq, Storage: storage, Descriptor: dp, Message: msg}, nil
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
