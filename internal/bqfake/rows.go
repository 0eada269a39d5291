package bqfake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/bigquery/storage/apiv1/storagepb"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// BigQuery's TIMESTAMP range, in microseconds since the epoch:
// 0001-01-01 00:00:00 to 9999-12-31 23:59:59.999999 UTC.
var (
	minTimestamp = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	maxTimestamp = time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC).UnixMicro()
)

// messageFromDescriptor resolves the self-contained DescriptorProto of a
// writer schema, as BigQuery does.
func messageFromDescriptor(dp *descriptorpb.DescriptorProto) (protoreflect.MessageDescriptor, error) {
	if dp == nil {
		return nil, fmt.Errorf("no proto_descriptor")
	}
	fd, err := protodesc.NewFile(&descriptorpb.FileDescriptorProto{
		Name:        new("writer_schema.proto"),
		Syntax:      new("proto2"),
		MessageType: []*descriptorpb.DescriptorProto{dp},
	}, nil)
	if err != nil {
		return nil, err
	}
	return fd.Messages().Get(0), nil
}

// plan maps a writer schema onto a table schema: one entry per column, in
// the table's order.
type plan struct {
	md   protoreflect.MessageDescriptor
	cols []colPlan
}

type colPlan struct {
	col *bigquery.FieldSchema
	fd  protoreflect.FieldDescriptor // nil: the writer never sends this column
	sub *plan                        // for RECORD columns
}

// newPlan checks that every field of md is a column of schema, with a
// compatible type, as BigQuery checks a writer schema.
func newPlan(md protoreflect.MessageDescriptor, schema bigquery.Schema) (*plan, error) {
	p := &plan{md: md, cols: make([]colPlan, len(schema))}
	byName := make(map[string]int, len(schema))
	for i, col := range schema {
		p.cols[i].col = col
		byName[strings.ToLower(col.Name)] = i
	}
	var extra []string
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		name := columnName(fd)
		j, ok := byName[strings.ToLower(name)]
		if !ok {
			extra = append(extra, name)
			continue
		}
		cp := &p.cols[j]
		if err := compatible(fd, cp.col); err != nil {
			return nil, err
		}
		cp.fd = fd
		if cp.col.Type == bigquery.RecordFieldType {
			sub, err := newPlan(fd.Message(), cp.col.Schema)
			if err != nil {
				return nil, fmt.Errorf("field %s: %w", cp.col.Name, err)
			}
			cp.sub = sub
		}
	}
	if len(extra) > 0 {
		return nil, schemaError(fmt.Sprintf("Input schema has more fields than BigQuery schema, extra fields: '%s'", strings.Join(extra, ",")))
	}
	return p, nil
}

// columnName is a field's column: its name, or its column_name annotation.
func columnName(fd protoreflect.FieldDescriptor) string {
	if opts, ok := fd.Options().(*descriptorpb.FieldOptions); ok && opts != nil &&
		proto.HasExtension(opts, storagepb.E_ColumnName) {
		return proto.GetExtension(opts, storagepb.E_ColumnName).(string)
	}
	return string(fd.Name())
}

// protoKinds are the proto kinds BigQuery accepts for each column type.
var protoKinds = map[bigquery.FieldType][]protoreflect.Kind{
	bigquery.StringFieldType:    {protoreflect.StringKind},
	bigquery.JSONFieldType:      {protoreflect.StringKind},
	bigquery.GeographyFieldType: {protoreflect.StringKind},
	bigquery.BytesFieldType:     {protoreflect.BytesKind},
	bigquery.IntegerFieldType: {protoreflect.Int32Kind, protoreflect.Int64Kind, protoreflect.Sint32Kind,
		protoreflect.Sint64Kind, protoreflect.Sfixed32Kind, protoreflect.Sfixed64Kind,
		protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.EnumKind},
	bigquery.FloatFieldType:     {protoreflect.FloatKind, protoreflect.DoubleKind},
	bigquery.BooleanFieldType:   {protoreflect.BoolKind},
	bigquery.TimestampFieldType: {protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind},
	bigquery.DateFieldType:      {protoreflect.Int32Kind, protoreflect.Int64Kind},
	bigquery.RecordFieldType:    {protoreflect.MessageKind, protoreflect.GroupKind},
}

// schemaError is a writer schema BigQuery refuses, worded as BigQuery does.
type schemaError string

func (e schemaError) Error() string { return string(e) }

func compatible(fd protoreflect.FieldDescriptor, col *bigquery.FieldSchema) error {
	kinds, known := protoKinds[col.Type]
	if !known {
		return fmt.Errorf("bqfake does not support column %s of type %s", col.Name, col.Type)
	}
	if !slices.Contains(kinds, fd.Kind()) || fd.IsList() != col.Repeated || fd.IsMap() {
		return schemaError(fmt.Sprintf("The proto field mismatched with BigQuery field at %s, the proto field type %v (repeated %v), BigQuery field type %s (repeated %v)",
			col.Name, fd.Kind(), fd.IsList(), col.Type, col.Repeated))
	}
	return nil
}

// decode parses one serialized row and checks it against the table. It
// returns the row, or the message of its row error.
func (p *plan) decode(data []byte) (map[string]any, string) {
	msg := dynamicpb.NewMessage(p.md)
	if err := (proto.UnmarshalOptions{AllowPartial: true}).Unmarshal(data, msg); err != nil {
		return nil, fmt.Sprintf("Could not parse an input row: %v", err)
	}
	return p.toMap(msg, "")
}

func (p *plan) toMap(msg protoreflect.Message, path string) (map[string]any, string) {
	if len(msg.GetUnknown()) > 0 {
		return nil, fmt.Sprintf("The row has fields that are not in the writer schema%s", at(path))
	}
	row := make(map[string]any, len(p.cols))
	for _, cp := range p.cols {
		name := path + cp.col.Name
		if cp.fd == nil || !msg.Has(cp.fd) {
			switch {
			case cp.col.Repeated:
				row[cp.col.Name] = []any{}
			case cp.col.Required:
				return nil, fmt.Sprintf("Required field %s is missing", name)
			}
			continue
		}
		v := msg.Get(cp.fd)
		if !cp.col.Repeated {
			val, bad := cp.value(v, name)
			if bad != "" {
				return nil, bad
			}
			row[cp.col.Name] = val
			continue
		}
		list := v.List()
		vals := make([]any, list.Len())
		for i := range vals {
			val, bad := cp.value(list.Get(i), fmt.Sprintf("%s[%d]", name, i))
			if bad != "" {
				return nil, bad
			}
			vals[i] = val
		}
		row[cp.col.Name] = vals
	}
	return row, ""
}

// value converts one proto value of column cp, checking it as BigQuery does.
func (cp *colPlan) value(v protoreflect.Value, name string) (any, string) {
	switch cp.col.Type {
	case bigquery.StringFieldType, bigquery.GeographyFieldType:
		s := v.String()
		if !utf8.ValidString(s) {
			return nil, fmt.Sprintf("Field %s: String is not valid UTF-8", name)
		}
		return s, ""
	case bigquery.JSONFieldType:
		s := v.String()
		if !utf8.ValidString(s) || !json.Valid([]byte(s)) {
			return nil, fmt.Sprintf("Field %s: Invalid JSON value: %.64q", name, s)
		}
		if d := jsonDepth(s); d > maxJSONDepth {
			return nil, fmt.Sprintf("Field %s: JSON nesting depth %d exceeds the limit of %d", name, d, maxJSONDepth)
		}
		return s, ""
	case bigquery.BytesFieldType:
		return bytes.Clone(v.Bytes()), ""
	case bigquery.IntegerFieldType, bigquery.DateFieldType:
		switch cp.fd.Kind() {
		case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
			return int64(v.Uint()), ""
		case protoreflect.EnumKind:
			return int64(v.Enum()), ""
		}
		return v.Int(), ""
	case bigquery.FloatFieldType:
		return v.Float(), ""
	case bigquery.BooleanFieldType:
		return v.Bool(), ""
	case bigquery.TimestampFieldType:
		us := v.Int()
		if us < minTimestamp || us > maxTimestamp {
			return nil, fmt.Sprintf("Timestamp field value is out of range: %d on field %s", us, name)
		}
		return time.UnixMicro(us).UTC(), ""
	case bigquery.RecordFieldType:
		return cp.sub.toMap(v.Message(), name+".")
	}
	return nil, fmt.Sprintf("Field %s: unsupported type %s", name, cp.col.Type)
}

func at(path string) string {
	if path == "" {
		return ""
	}
	return " at " + strings.TrimSuffix(path, ".")
}

// maxJSONDepth is BigQuery's limit on the nesting of a JSON value.
const maxJSONDepth = 500

// jsonDepth returns the deepest nesting of objects and arrays in the valid
// JSON text s.
func jsonDepth(s string) int {
	depth, deepest, inString := 0, 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			depth++
			deepest = max(deepest, depth)
		case c == '}' || c == ']':
			depth--
		}
	}
	return deepest
}
