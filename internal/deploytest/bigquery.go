package deploytest

import (
	"encoding/json"
	"net/http"
	"strings"
)

// bigquery: datasets, tables and views, dataset IAM policies.
func (s *Server) bigquery(r Request) (int, any) {
	if r.Path == "/$discovery/rest" && s.bigQueryDiscovery != nil {
		return http.StatusOK, json.RawMessage(s.bigQueryDiscovery)
	}
	p := strings.TrimPrefix(r.Path, "/bigquery/v2/")
	if ds, method, ok := strings.Cut(p, ":"); ok {
		return s.policyMethod(r, "bigquery:"+ds, method)
	}
	seg := strings.Split(p, "/") // projects P datasets D [tables T]
	if len(seg) < 3 || seg[0] != "projects" || seg[2] != "datasets" {
		return notFound(r)
	}
	switch {
	case r.Method == http.MethodGet && len(seg) == 5 && seg[4] == "tables":
		if _, ok := s.res["bigquery:"+strings.Join(seg[:4], "/")]; !ok {
			return notFound(r)
		}
		tables := s.list("bigquery:" + p + "/")
		var out []any
		for _, t := range tables {
			t := t.(map[string]any)
			out = append(out, map[string]any{"kind": t["kind"], "id": t["id"],
				"tableReference": t["tableReference"], "type": t["type"]})
		}
		list := map[string]any{"kind": "bigquery#tableList", "totalItems": len(out), "etag": "ZXRhZw=="}
		if len(out) > 0 { // like BigQuery, no "tables" for an empty dataset
			list["tables"] = out
		}
		return http.StatusOK, list
	case r.Method == http.MethodGet:
		return s.get(r, "bigquery:"+p)
	case r.Method == http.MethodPost && len(seg) == 3:
		body := decode(r.Body)
		ref, _ := body["datasetReference"].(map[string]any)
		id, _ := ref["datasetId"].(string)
		body["id"], body["kind"] = seg[1]+":"+id, "bigquery#dataset"
		body["creationTime"], body["etag"] = "1795000000000", "ZXRhZw=="
		return s.create("bigquery:"+p+"/"+id, body)
	case r.Method == http.MethodPost && len(seg) == 5 && seg[4] == "tables":
		if _, ok := s.res["bigquery:"+strings.Join(seg[:4], "/")]; !ok {
			return notFound(r)
		}
		body := decode(r.Body)
		ref, _ := body["tableReference"].(map[string]any)
		id, _ := ref["tableId"].(string)
		body["id"], body["kind"] = seg[1]+":"+seg[3]+"."+id, "bigquery#table"
		body["type"] = "TABLE"
		if _, ok := body["view"]; ok {
			body["type"] = "VIEW"
		}
		body["creationTime"], body["etag"] = "1795000000000", "ZXRhZw=="
		return s.create("bigquery:"+p+"/"+id, body)
	}
	return notFound(r)
}
