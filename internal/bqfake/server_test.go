package bqfake_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/bigquery/storage/apiv1/storagepb"
	"cloud.google.com/go/bigquery/storage/managedwriter"
	"cloud.google.com/go/bigquery/storage/managedwriter/adapt"
	"github.com/devicestream/enrichevent/internal/bqfake"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

const project, dataset, tbl = "proj", "ds", "events"

var testSchema = bigquery.Schema{
	{Name: "id", Type: bigquery.StringFieldType, Required: true},
	{Name: "n", Type: bigquery.IntegerFieldType},
	{Name: "f", Type: bigquery.FloatFieldType},
	{Name: "ok", Type: bigquery.BooleanFieldType},
	{Name: "at", Type: bigquery.TimestampFieldType},
	{Name: "doc", Type: bigquery.JSONFieldType},
	{Name: "raw", Type: bigquery.BytesFieldType},
	{Name: "tags", Type: bigquery.RecordFieldType, Repeated: true, Schema: bigquery.Schema{
		{Name: "k", Type: bigquery.StringFieldType, Required: true},
		{Name: "v", Type: bigquery.StringFieldType},
	}},
}

func start(t *testing.T) *bqfake.Server {
	t.Helper()
	s, err := bqfake.Start()
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(s.Close)
	s.AddTable(project, dataset, tbl, testSchema)
	return s
}

func writerClient(t *testing.T, s *bqfake.Server) *managedwriter.Client {
	t.Helper()
	c, err := managedwriter.NewClient(context.Background(), project,
		option.WithEndpoint(s.GRPCAddr()), option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	if err != nil {
		t.Fatalf("managedwriter.NewClient: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// descriptors returns the writer schema of a table schema and the message
// descriptor to encode rows with.
func descriptors(t *testing.T, schema bigquery.Schema) (*descriptorpb.DescriptorProto, protoreflect.MessageDescriptor) {
	t.Helper()
	ts, err := adapt.BQSchemaToStorageTableSchema(schema)
	if err != nil {
		t.Fatal(err)
	}
	d, err := adapt.StorageSchemaToProto2Descriptor(ts, "root")
	if err != nil {
		t.Fatal(err)
	}
	md := d.(protoreflect.MessageDescriptor)
	dp, err := adapt.NormalizeDescriptor(md)
	if err != nil {
		t.Fatal(err)
	}
	return dp, md
}

// encode builds a row from column values: string, int64, float64, bool,
// []byte, or []map[string]string for a repeated record.
func encode(t *testing.T, md protoreflect.MessageDescriptor, cols map[string]any) []byte {
	t.Helper()
	m := dynamicpb.NewMessage(md)
	for name, v := range cols {
		fd := md.Fields().ByName(protoreflect.Name(name))
		if fd == nil {
			t.Fatalf("no field %q", name)
		}
		switch v := v.(type) {
		case []map[string]string:
			list := m.Mutable(fd).List()
			for _, kv := range v {
				sub := dynamicpb.NewMessage(fd.Message())
				for k, x := range kv {
					sub.Set(fd.Message().Fields().ByName(protoreflect.Name(k)), protoreflect.ValueOfString(x))
				}
				list.Append(protoreflect.ValueOfMessage(sub))
			}
		default:
			m.Set(fd, protoreflect.ValueOf(v))
		}
	}
	b, err := proto.MarshalOptions{AllowPartial: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func openStream(t *testing.T, c *managedwriter.Client, table string, dp *descriptorpb.DescriptorProto, retries bool) *managedwriter.ManagedStream {
	t.Helper()
	ms, err := c.NewManagedStream(context.Background(),
		managedwriter.WithDestinationTable(managedwriter.TableParentFromParts(project, dataset, table)),
		managedwriter.WithType(managedwriter.DefaultStream),
		managedwriter.WithSchemaDescriptor(dp),
		managedwriter.EnableWriteRetries(retries))
	if err != nil {
		t.Fatalf("NewManagedStream: %v", err)
	}
	t.Cleanup(func() { ms.Close() })
	return ms
}

func appendRows(t *testing.T, ms *managedwriter.ManagedStream, rows ...[]byte) (*storagepb.AppendRowsResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := ms.AppendRows(ctx, rows)
	if err != nil {
		return nil, err
	}
	return res.FullResponse(ctx)
}

func TestTablesGet(t *testing.T) {
	s := start(t)
	for _, endpoint := range []string{s.RESTEndpoint(), s.RESTEndpoint() + "/bigquery/v2/"} {
		c, err := bigquery.NewClient(context.Background(), project,
			option.WithEndpoint(endpoint), option.WithoutAuthentication())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		md, err := c.Dataset(dataset).Table(tbl).Metadata(context.Background())
		if err != nil {
			t.Fatalf("Metadata via %s: %v", endpoint, err)
		}
		if len(md.Schema) != len(testSchema) || md.Schema[7].Name != "tags" || len(md.Schema[7].Schema) != 2 ||
			!md.Schema[0].Required || md.Schema[5].Type != bigquery.JSONFieldType {
			t.Errorf("Metadata via %s: schema %+v, want %+v", endpoint, md.Schema, testSchema)
		}
		_, err = c.Dataset(dataset).Table("nope").Metadata(context.Background())
		var gerr *googleapi.Error
		if !errors.As(err, &gerr) || gerr.Code != http.StatusNotFound {
			t.Errorf("Metadata(nope) via %s = %v, want a 404 googleapi.Error", endpoint, err)
		}
	}
}

func TestAppendStoresTypedRows(t *testing.T) {
	s := start(t)
	dp, md := descriptors(t, testSchema)
	ms := openStream(t, writerClient(t, s), tbl, dp, false)
	at := time.Date(2026, 11, 3, 10, 4, 5, 123456000, time.UTC)
	resp, err := appendRows(t, ms,
		encode(t, md, map[string]any{
			"id": "a", "n": int64(-7), "f": 1.5, "ok": true, "at": at.UnixMicro(),
			"doc": `{"x":[1,2]}`, "raw": []byte{0, 0xff},
			"tags": []map[string]string{{"k": "color", "v": "red"}, {"k": "size"}},
		}),
		encode(t, md, map[string]any{"id": "b"}))
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	if len(resp.GetRowErrors()) != 0 {
		t.Fatalf("append: row errors %v", resp.GetRowErrors())
	}
	rows := s.Rows(project, dataset, tbl)
	if len(rows) != 2 {
		t.Fatalf("Rows = %d rows, want 2", len(rows))
	}
	a := rows[0]
	checks := []struct {
		col  string
		got  any
		want any
	}{
		{"id", a["id"], "a"},
		{"n", a["n"], int64(-7)},
		{"f", a["f"], 1.5},
		{"ok", a["ok"], true},
		{"at", a["at"], at},
		{"doc", a["doc"], `{"x":[1,2]}`},
		{"raw", string(a["raw"].([]byte)), "\x00\xff"},
		{"tags[0].k", a["tags"].([]any)[0].(map[string]any)["k"], "color"},
		{"tags[0].v", a["tags"].([]any)[0].(map[string]any)["v"], "red"},
		{"tags[1].k", a["tags"].([]any)[1].(map[string]any)["k"], "size"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("row a %s = %#v, want %#v", c.col, c.got, c.want)
		}
	}
	if _, ok := a["tags"].([]any)[1].(map[string]any)["v"]; ok {
		t.Errorf("row a tags[1].v is set, want NULL (absent)")
	}
	b := rows[1]
	for _, col := range []string{"n", "f", "ok", "at", "doc", "raw"} {
		if v, ok := b[col]; ok {
			t.Errorf("row b %s = %#v, want NULL (absent)", col, v)
		}
	}
	if tags, ok := b["tags"].([]any); !ok || len(tags) != 0 {
		t.Errorf("row b tags = %#v, want an empty list", b["tags"])
	}
	if got := s.Appends(); got != 1 {
		t.Errorf("Appends() = %d, want 1", got)
	}
}

func TestRowErrors(t *testing.T) {
	tooLate := time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	tests := []struct {
		name string
		row  map[string]any
		want string // in the row error's message
	}{
		{"timestamp out of range", map[string]any{"id": "x", "at": tooLate}, "out of range"},
		{"timestamp before year 1", map[string]any{"id": "x", "at": int64(-62135596800000001)}, "out of range"},
		{"invalid JSON", map[string]any{"id": "x", "doc": `{"x":`}, "Invalid JSON"},
		{"JSON nested too deep", map[string]any{"id": "x", "doc": `{"s":"[[[\"","x":` + strings.Repeat("[", 501) + strings.Repeat("]", 501) + "}"}, "nesting depth 502"},
		{"missing required", map[string]any{"n": int64(1)}, "Required field id"},
		{"missing required in record", map[string]any{"id": "x", "tags": []map[string]string{{"v": "only"}}}, "Required field tags[0].k"},
		{"invalid UTF-8", map[string]any{"id": "\xff"}, "UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := start(t)
			dp, md := descriptors(t, testSchema)
			ms := openStream(t, writerClient(t, s), tbl, dp, false)
			good := encode(t, md, map[string]any{"id": "good"})
			resp, err := appendRows(t, ms, good, encode(t, md, tt.row), good)
			if status.Code(err) != codes.InvalidArgument {
				t.Errorf("append error = %v, want InvalidArgument", err)
			}
			re := resp.GetRowErrors()
			if len(re) != 1 || re[0].GetIndex() != 1 || !strings.Contains(re[0].GetMessage(), tt.want) {
				t.Fatalf("row errors = %v, want one at index 1 containing %q", re, tt.want)
			}
			if n := len(s.Rows(project, dataset, tbl)); n != 0 {
				t.Errorf("stored %d rows, want 0: a request with row errors stores nothing", n)
			}
		})
	}
}

func TestWriterSchemaChecks(t *testing.T) {
	tests := []struct {
		name   string
		schema bigquery.Schema
		want   string
	}{
		{"extra field", append(bigquery.Schema{{Name: "bogus", Type: bigquery.StringFieldType}}, testSchema...), "extra fields: 'bogus'"},
		{"wrong type", bigquery.Schema{{Name: "id", Type: bigquery.IntegerFieldType, Required: true}}, "mismatched"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := start(t)
			dp, md := descriptors(t, tt.schema)
			ms := openStream(t, writerClient(t, s), tbl, dp, false)
			row := dynamicpb.NewMessage(md)
			data, _ := proto.MarshalOptions{AllowPartial: true}.Marshal(row)
			resp, err := appendRows(t, ms, data)
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("append error = %v, want InvalidArgument containing %q", err, tt.want)
			}
			if len(resp.GetRowErrors()) != 0 {
				t.Errorf("row errors = %v, want none: the request as a whole is wrong", resp.GetRowErrors())
			}
		})
	}
}

func TestUnknownTable(t *testing.T) {
	s := start(t)
	dp, _ := descriptors(t, testSchema)
	_, err := writerClient(t, s).NewManagedStream(context.Background(),
		managedwriter.WithDestinationTable(managedwriter.TableParentFromParts(project, dataset, "nope")),
		managedwriter.WithType(managedwriter.DefaultStream),
		managedwriter.WithSchemaDescriptor(dp))
	if status.Code(err) != codes.NotFound {
		t.Errorf("NewManagedStream(nope) = %v, want NotFound", err)
	}
}

func TestFailNextAppends(t *testing.T) {
	t.Run("retried by the client", func(t *testing.T) {
		s := start(t)
		dp, md := descriptors(t, testSchema)
		ms := openStream(t, writerClient(t, s), tbl, dp, true)
		s.FailNextAppends(1)
		if _, err := appendRows(t, ms, encode(t, md, map[string]any{"id": "a"})); err != nil {
			t.Fatalf("append after one failure, with retries: %v", err)
		}
		if got := s.Appends(); got != 2 {
			t.Errorf("Appends() = %d, want 2 (the failure, then the retry on a new connection)", got)
		}
		if n := len(s.Rows(project, dataset, tbl)); n != 1 {
			t.Errorf("stored %d rows, want 1", n)
		}
	})
	t.Run("without retries", func(t *testing.T) {
		s := start(t)
		dp, md := descriptors(t, testSchema)
		ms := openStream(t, writerClient(t, s), tbl, dp, false)
		s.FailNextAppends(1)
		if _, err := appendRows(t, ms, encode(t, md, map[string]any{"id": "a"})); status.Code(err) != codes.Unavailable {
			t.Errorf("append = %v, want Unavailable", err)
		}
		if n := len(s.Rows(project, dataset, tbl)); n != 0 {
			t.Errorf("stored %d rows, want 0", n)
		}
	})
}

func TestRejectTable(t *testing.T) {
	s := start(t)
	dp, md := descriptors(t, testSchema)
	ms := openStream(t, writerClient(t, s), tbl, dp, false)
	s.RejectTable(project, dataset, tbl, codes.PermissionDenied)
	if _, err := appendRows(t, ms, encode(t, md, map[string]any{"id": "a"})); status.Code(err) != codes.PermissionDenied {
		t.Errorf("append to a rejecting table = %v, want PermissionDenied", err)
	}
	s.RejectTable(project, dataset, tbl, codes.OK)
	if _, err := appendRows(t, ms, encode(t, md, map[string]any{"id": "a"})); err != nil {
		t.Errorf("append after RejectTable(OK) = %v, want nil", err)
	}
}

func TestLatency(t *testing.T) {
	s := start(t)
	dp, md := descriptors(t, testSchema)
	ms := openStream(t, writerClient(t, s), tbl, dp, false)
	s.SetLatency(time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	res, err := ms.AppendRows(ctx, [][]byte{encode(t, md, map[string]any{"id": "a"})})
	if err == nil {
		_, err = res.GetResult(ctx)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("append with an hour of latency = %v, want DeadlineExceeded", err)
	}
}

func TestHold(t *testing.T) {
	s := start(t)
	dp, md := descriptors(t, testSchema)
	ms := openStream(t, writerClient(t, s), tbl, dp, false)
	release := s.Hold()
	res, err := ms.AppendRows(context.Background(), [][]byte{encode(t, md, map[string]any{"id": "a"})})
	if err != nil {
		t.Fatal(err)
	}
	for s.Appends() == 0 { // received, then held
		time.Sleep(time.Millisecond)
	}
	select {
	case <-res.Ready():
		t.Fatal("append finished while held")
	default:
	}
	if n := len(s.Rows(project, dataset, tbl)); n != 0 {
		t.Errorf("stored %d rows while held, want 0", n)
	}
	release()
	if _, err := res.GetResult(context.Background()); err != nil {
		t.Errorf("append after release = %v", err)
	}
}

func TestCloseEndsHeldAppends(t *testing.T) {
	s := start(t)
	dp, md := descriptors(t, testSchema)
	ms := openStream(t, writerClient(t, s), tbl, dp, false)
	s.Hold()
	res, err := ms.AppendRows(context.Background(), [][]byte{encode(t, md, map[string]any{"id": "a"})})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := res.GetResult(ctx); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("held append after Close = %v, want the stream's error", err)
	}
}
