package bqfake

import (
	"encoding/json"
	"fmt"
	"net/http"

	bq "google.golang.org/api/bigquery/v2"
)

// restHandler serves tables.get. The Go client sends it to
// <endpoint>/projects/P/datasets/D/tables/T, where the endpoint is the
// option.WithEndpoint URL; the real service's base path is /bigquery/v2/,
// so both forms are served.
func (s *Server) restHandler() http.Handler {
	mux := http.NewServeMux()
	for _, prefix := range []string{"", "/bigquery/v2"} {
		mux.HandleFunc("GET "+prefix+"/projects/{project}/datasets/{dataset}/tables/{table}", s.getTable)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotImplemented, "notImplemented",
			fmt.Sprintf("bqfake serves tables.get only, not %s %s", r.Method, r.URL.Path))
	})
	return mux
}

func (s *Server) getTable(w http.ResponseWriter, r *http.Request) {
	p, d, id := r.PathValue("project"), r.PathValue("dataset"), r.PathValue("table")
	if s.take(&s.failGets) {
		writeError(w, http.StatusServiceUnavailable, "backendError", "Error encountered during execution. Retrying may solve the problem.")
		return
	}
	s.mu.Lock()
	t := s.tables[tableKey(p, d, id)]
	var schema []byte
	var err error
	if t != nil {
		schema, err = t.schema.ToJSONFields()
	}
	s.mu.Unlock()
	if t == nil {
		writeError(w, http.StatusNotFound, "notFound", fmt.Sprintf("Not found: Table %s:%s.%s", p, d, id))
		return
	}
	var fields []*bq.TableFieldSchema
	if err == nil {
		err = json.Unmarshal(schema, &fields)
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internalError", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, &bq.Table{
		Kind:           "bigquery#table",
		Id:             fmt.Sprintf("%s:%s.%s", p, d, id),
		TableReference: &bq.TableReference{ProjectId: p, DatasetId: d, TableId: id},
		Schema:         &bq.TableSchema{Fields: fields},
		Type:           "TABLE",
		Location:       "US",
	})
}

// writeError answers in the JSON error format of Google APIs, which the
// client turns into a *googleapi.Error.
func writeError(w http.ResponseWriter, code int, reason, msg string) {
	writeJSON(w, code, map[string]any{"error": map[string]any{
		"code":    code,
		"message": msg,
		"errors":  []map[string]string{{"domain": "global", "reason": reason, "message": msg}},
	}})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
