package bqfake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"cloud.google.com/go/bigquery/storage/apiv1/storagepb"
	"cloud.google.com/go/bigquery/storage/managedwriter/adapt"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// maxRequestBytes is BigQuery's limit on one AppendRows request.
const maxRequestBytes = 10 << 20

// GetWriteStream describes a table's _default stream. The managedwriter
// client calls it when opening any stream.
func (s *Server) GetWriteStream(_ context.Context, req *storagepb.GetWriteStreamRequest) (*storagepb.WriteStream, error) {
	t, err := s.lookupStream(req.GetName())
	if err != nil {
		return nil, err
	}
	ws := &storagepb.WriteStream{
		Name:      req.GetName(),
		Type:      storagepb.WriteStream_COMMITTED,
		WriteMode: storagepb.WriteStream_INSERT,
		Location:  "US",
	}
	if req.GetView() == storagepb.WriteStreamView_FULL {
		if ws.TableSchema, err = adapt.BQSchemaToStorageTableSchema(t.schema); err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
	}
	return ws, nil
}

// lookupStream returns the table of a stream name
// projects/P/datasets/D/tables/T/streams/_default.
func (s *Server) lookupStream(name string) (*table, error) {
	parts := strings.Split(name, "/")
	if len(parts) != 8 || parts[0] != "projects" || parts[2] != "datasets" || parts[4] != "tables" || parts[6] != "streams" {
		return nil, status.Errorf(codes.InvalidArgument, "invalid stream name %q", name)
	}
	s.mu.Lock()
	t := s.tables[tableKey(parts[1], parts[3], parts[5])]
	s.mu.Unlock()
	if t == nil || parts[7] != "_default" {
		return nil, status.Errorf(codes.NotFound, "Requested entity was not found. Entity: %s", name)
	}
	return t, nil
}

// reply is one response to send, or the error that ends the stream.
type reply struct {
	resp *storagepb.AppendRowsResponse
	due  time.Time
}

// AppendRows serves one bidirectional stream: requests are processed in
// order as they arrive, and each response is sent once its latency has
// passed, so that responses are pipelined as over a network.
func (s *Server) AppendRows(stream storagepb.BigQueryWrite_AppendRowsServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	replies := make(chan reply, 64)
	sent := make(chan error, 1)
	go func() {
		err := s.sendReplies(ctx, stream, replies)
		cancel() // stops the receiver's pending push, if any
		sent <- err
	}()
	err := s.receive(ctx, stream, replies)
	close(replies)
	sendErr := <-sent
	if err != nil {
		return err
	}
	return sendErr
}

// sendReplies sends the replies in order, each at its due time.
func (s *Server) sendReplies(ctx context.Context, stream storagepb.BigQueryWrite_AppendRowsServer, replies <-chan reply) error {
	for r := range replies {
		if err := s.sleepUntil(ctx, r.due); err != nil {
			return err
		}
		if err := stream.Send(r.resp); err != nil {
			return err
		}
	}
	return nil
}

// receive reads and processes requests until the client closes its side
// (nil) or the stream fails (the error to end it with).
func (s *Server) receive(ctx context.Context, stream storagepb.BigQueryWrite_AppendRowsServer, replies chan<- reply) error {
	var c connState
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		s.appends.Add(1)
		if err := s.waitHeld(ctx); err != nil {
			return err
		}
		resp, err := s.process(&c, req)
		if err != nil {
			return err
		}
		s.mu.Lock()
		due := time.Now().Add(s.latency)
		s.mu.Unlock()
		select {
		case replies <- reply{resp: resp, due: due}:
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
}

// waitHeld blocks while appends are held.
func (s *Server) waitHeld(ctx context.Context) error {
	s.mu.Lock()
	h := s.hold
	s.mu.Unlock()
	if h == nil {
		return nil
	}
	select {
	case <-h:
		return nil
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	case <-s.closed:
		return status.Error(codes.Unavailable, "bqfake: server closed")
	}
}

func (s *Server) sleepUntil(ctx context.Context, due time.Time) error {
	d := time.Until(due)
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	case <-s.closed:
		return status.Error(codes.Unavailable, "bqfake: server closed")
	}
}

// connState is what BigQuery remembers about one AppendRows stream.
type connState struct {
	stream    string
	md        protoreflect.MessageDescriptor
	plan      *plan
	planTable *table
}

// process handles one request. An error ends the stream; failures of the
// request alone are in the response.
func (s *Server) process(c *connState, req *storagepb.AppendRowsRequest) (*storagepb.AppendRowsResponse, error) {
	if s.take(&s.failNext) {
		return nil, status.Error(codes.Unavailable, "bqfake: injected failure: the service is unavailable")
	}
	if name := req.GetWriteStream(); name != "" && name != c.stream {
		c.stream, c.plan = name, nil
	}
	if c.stream == "" {
		return nil, status.Error(codes.InvalidArgument, "write_stream must be set on the first request of a connection")
	}
	rows := req.GetProtoRows()
	if rows == nil {
		return nil, status.Error(codes.InvalidArgument, "bqfake accepts proto_rows only")
	}
	if ws := rows.GetWriterSchema(); ws != nil {
		md, err := messageFromDescriptor(ws.GetProtoDescriptor())
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "Invalid proto schema: %v", err)
		}
		c.md, c.plan = md, nil
	}
	if c.md == nil {
		return nil, status.Error(codes.InvalidArgument, "writer_schema must be set on the first request of a connection")
	}
	resp := &storagepb.AppendRowsResponse{WriteStream: c.stream}
	t, err := s.lookupStream(c.stream)
	switch {
	case err != nil:
		return withError(resp, status.Convert(err)), nil
	case t.reject != codes.OK:
		return withError(resp, status.Newf(t.reject, "bqfake: table %s rejects appends", c.stream)), nil
	case req.GetOffset() != nil:
		return withError(resp, status.New(codes.InvalidArgument, "offsets are not supported on the _default stream")), nil
	case proto.Size(req) > maxRequestBytes:
		return withError(resp, status.Newf(codes.InvalidArgument,
			"AppendRows request too large: %d limit %d", proto.Size(req), maxRequestBytes)), nil
	}
	if c.plan == nil || c.planTable != t {
		if c.plan, err = newPlan(c.md, t.schema); err != nil {
			c.plan = nil
			return withError(resp, status.Newf(codes.InvalidArgument, "%v Entity: %s", err, c.stream)), nil
		}
		c.planTable = t
	}
	return s.appendRows(c, t, rows.GetRows().GetSerializedRows(), resp), nil
}

// appendRows decodes and checks the rows, and stores them all unless one
// is bad.
func (s *Server) appendRows(c *connState, t *table, data [][]byte, resp *storagepb.AppendRowsResponse) *storagepb.AppendRowsResponse {
	good := make([]map[string]any, 0, len(data))
	for i, d := range data {
		row, msg := c.plan.decode(d)
		if msg != "" {
			resp.RowErrors = append(resp.RowErrors, &storagepb.RowError{
				Index: int64(i), Code: storagepb.RowError_FIELDS_ERROR, Message: msg,
			})
			continue
		}
		good = append(good, row)
	}
	key := tableKey(t.project, t.dataset, t.id)
	if n := len(resp.RowErrors); n > 0 {
		s.rowErrors.Add(int64(n))
		s.logAppend(key, len(data), resp.RowErrors, nil)
		if s.take(&s.misnumber) {
			for _, e := range resp.RowErrors {
				e.Index += int64(len(data))
			}
			return resp
		}
		if s.take(&s.firstOnly) {
			resp.RowErrors = resp.RowErrors[:1]
		}
		return withError(resp, status.Newf(codes.InvalidArgument,
			"Errors found while processing rows. Please refer to the row_errors field for details. "+
				"The list may not be complete because of the size limitations. Entity: %s", c.stream))
	}
	s.mu.Lock()
	current := s.tables[key] == t
	if current {
		t.rows = append(t.rows, good...)
	}
	s.mu.Unlock()
	if !current {
		return withError(resp, status.Newf(codes.Aborted, "table %s changed during the append", key))
	}
	s.rows.Add(int64(len(good)))
	s.logAppend(key, len(data), nil, good)
	resp.Response = &storagepb.AppendRowsResponse_AppendResult_{AppendResult: &storagepb.AppendRowsResponse_AppendResult{}}
	return resp
}

func withError(resp *storagepb.AppendRowsResponse, st *status.Status) *storagepb.AppendRowsResponse {
	resp.Response = &storagepb.AppendRowsResponse_Error{Error: st.Proto()}
	return resp
}

// take uses up one of the faults left in *n, a counter s.mu guards, and
// reports whether there was one.
func (s *Server) take(n *int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if *n > 0 {
		*n--
		return true
	}
	return false
}

func (s *Server) logAppend(table string, n int, rowErrs []*storagepb.RowError, rows []map[string]any) {
	if s.log == nil {
		return
	}
	if len(rowErrs) > 0 {
		s.log.Warn("append rejected: row errors, no row stored", "table", table, "rows", n,
			"row_errors", len(rowErrs), "first_error", fmt.Sprintf("row %d: %s", rowErrs[0].GetIndex(), rowErrs[0].GetMessage()))
		return
	}
	s.log.Info("append", "table", table, "rows", n, "total_appends", s.appends.Load(), "total_rows", s.rows.Load())
	for _, r := range rows {
		s.log.Debug("row", "table", table, "row", r)
	}
}
