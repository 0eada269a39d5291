package deploytest

import (
	"bytes"
	"crypto/md5"
	"encoding/base64"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
)

// storage: buckets, bucket IAM, objects and uploads (JSON API), and the
// signed upload URLs handed out for function sources.
func (s *Server) storage(r Request) (int, any) {
	p := strings.TrimPrefix(r.Path, "/storage/v1/")
	switch {
	case strings.HasPrefix(r.Path, "/upload-source/"):
		s.res["storage:"+r.Path] = map[string]any{"size": len(r.Body)}
		return http.StatusOK, map[string]any{}
	case strings.HasPrefix(r.Path, "/upload/storage/v1/b/") && r.Method == http.MethodPost:
		return s.uploadObject(r)
	case r.Method == http.MethodGet && p == "b":
		q, _ := url.ParseQuery(r.Query)
		var items []any
		for _, b := range s.list("storage:b/") {
			if name, _ := b.(map[string]any)["name"].(string); strings.HasPrefix(name, q.Get("prefix")) {
				items = append(items, b)
			}
		}
		return http.StatusOK, map[string]any{"kind": "storage#buckets", "items": items}
	case r.Method == http.MethodPost && p == "b":
		body := decode(r.Body)
		name, _ := body["name"].(string)
		body["id"], body["kind"] = name, "storage#bucket"
		body["projectNumber"], body["metageneration"] = s.ProjectNumber, "1"
		body["timeCreated"] = "2026-11-24T08:00:00.000Z"
		return s.create("storage:b/"+name, body)
	case strings.HasPrefix(p, "b/") && strings.HasSuffix(p, "/iam"):
		key := "storage:" + strings.TrimSuffix(p, "/iam")
		if _, ok := s.res[key]; !ok {
			return notFound(r)
		}
		if r.Method == http.MethodPut {
			// The JSON API takes the bare policy, not {"policy": ...}.
			return s.setPolicy(key, []byte(`{"policy":`+string(r.Body)+`}`))
		}
		return s.getPolicy(key)
	case r.Method == http.MethodGet && strings.HasPrefix(p, "b/") && strings.HasSuffix(p, "/o"):
		bucket := strings.TrimSuffix(p, "/o")
		if _, ok := s.res["storage:"+bucket]; !ok {
			return notFound(r)
		}
		q, _ := url.ParseQuery(r.Query)
		var items []any
		for _, k := range sortedKeys(s.res) {
			if name, ok := strings.CutPrefix(k, "storage:"+p+"/"); ok && strings.HasPrefix(name, q.Get("prefix")) {
				items = append(items, s.res[k])
			}
		}
		return http.StatusOK, map[string]any{"kind": "storage#objects", "items": items}
	case r.Method == http.MethodPatch && strings.HasPrefix(p, "b/") && !strings.Contains(strings.TrimPrefix(p, "b/"), "/"):
		cur, ok := s.res["storage:"+p]
		if !ok {
			return notFound(r)
		}
		merge(cur, decode(r.Body), "")
		return http.StatusOK, cur
	case r.Method == http.MethodGet && strings.HasPrefix(p, "b/"):
		return s.get(r, "storage:"+p)
	}
	return notFound(r)
}

// uploadObject stores a media or multipart upload and answers its metadata.
func (s *Server) uploadObject(r Request) (int, any) {
	bucket := strings.TrimSuffix(strings.TrimPrefix(r.Path, "/upload/storage/v1/b/"), "/o")
	q, _ := url.ParseQuery(r.Query)
	name, data := q.Get("name"), r.Body
	if q.Get("uploadType") == "multipart" {
		meta, media, err := splitMultipart(r.Type, r.Body)
		if err != nil {
			return badRequest(err.Error())
		}
		if n, ok := meta["name"].(string); ok && n != "" {
			name = n
		}
		data = media
	}
	if name == "" {
		return badRequest("object name missing")
	}
	if _, ok := s.res["storage:b/"+bucket]; !ok {
		return notFound(r)
	}
	sum := md5.Sum(data)
	s.opSeq++
	obj := map[string]any{"kind": "storage#object", "bucket": bucket, "name": name,
		"id":         bucket + "/" + name,
		"size":       fmt.Sprint(len(data)),
		"md5Hash":    base64.StdEncoding.EncodeToString(sum[:]),
		"generation": fmt.Sprint(1700000000000000 + s.opSeq), "metageneration": "1",
		"contentType": "text/csv", "updated": "2026-11-24T08:00:00.000Z",
		"timeCreated": "2026-11-24T08:00:00.000Z", "storageClass": "STANDARD"}
	s.res["storage:b/"+bucket+"/o/"+name] = obj
	return http.StatusOK, obj
}

// splitMultipart splits a multipart/related upload body into its JSON
// metadata and its media.
func splitMultipart(contentType string, body []byte) (map[string]any, []byte, error) {
	// gcloud single-quotes the boundary, which mime.ParseMediaType rejects.
	_, boundary, ok := strings.Cut(contentType, "boundary=")
	boundary = strings.Trim(strings.TrimSpace(strings.Split(boundary, ";")[0]), `'"`)
	if !ok || boundary == "" {
		return nil, nil, fmt.Errorf("multipart upload without a boundary: %q", contentType)
	}
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	var parts [][]byte
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		b, err := io.ReadAll(part)
		if err != nil {
			return nil, nil, err
		}
		parts = append(parts, b)
	}
	if len(parts) != 2 {
		return nil, nil, fmt.Errorf("multipart body has %d parts, want 2", len(parts))
	}
	return decode(parts[0]), parts[1], nil
}
