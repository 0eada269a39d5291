package deploytest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
)

// The resource store and the answers every API shares. Methods on Server in
// this file and in the API files run with s.mu held.

// apiError is Google's JSON error shape, with the legacy "errors" list that
// BigQuery and Cloud Storage clients read.
func apiError(code int, status, reason, msg string) (int, any) {
	return code, map[string]any{"error": map[string]any{
		"code": code, "message": msg, "status": status,
		"errors": []any{map[string]any{"reason": reason, "message": msg, "domain": "global"}},
	}}
}

// notFound answers 404 NOT_FOUND for the request's path.
func notFound(r Request) (int, any) {
	return apiError(http.StatusNotFound, "NOT_FOUND", "notFound", "Not found: "+r.Path)
}

// badRequest answers 400 INVALID_ARGUMENT.
func badRequest(msg string) (int, any) {
	return apiError(http.StatusBadRequest, "INVALID_ARGUMENT", "invalid", msg)
}

// conflict answers 409 ALREADY_EXISTS.
func conflict(name string) (int, any) {
	return apiError(http.StatusConflict, "ALREADY_EXISTS", "duplicate", "Already exists: "+name)
}

// get answers a stored resource or NOT_FOUND.
func (s *Server) get(r Request, key string) (int, any) {
	if v, ok := s.res[key]; ok {
		return http.StatusOK, v
	}
	return notFound(r)
}

// create stores v under key unless something is there already.
func (s *Server) create(key string, v map[string]any) (int, any) {
	if _, ok := s.res[key]; ok {
		return conflict(key)
	}
	s.res[key] = v
	return http.StatusOK, v
}

// list returns the stored resources whose keys start with prefix and have no
// further "/" after it, in key order.
func (s *Server) list(prefix string) []any {
	var out []any
	for _, k := range sortedKeys(s.res) {
		rest, ok := strings.CutPrefix(k, prefix)
		if !ok || strings.Contains(rest, "/") {
			continue
		}
		out = append(out, s.res[k])
	}
	return out
}

// operation returns a finished long-running operation carrying response.
func (s *Server) operation(prefix string, response map[string]any) map[string]any {
	s.opSeq++
	op := map[string]any{
		"name":     fmt.Sprintf("%s/operations/op-%d", prefix, s.opSeq),
		"done":     true,
		"response": response,
		"metadata": map[string]any{},
	}
	s.res["op:"+op["name"].(string)] = op
	return op
}

// policyMethod answers the IAM method (getIamPolicy, setIamPolicy) of the
// resource stored under key; 404 for an unknown resource or method.
func (s *Server) policyMethod(r Request, key, method string) (int, any) {
	if _, ok := s.res[key]; !ok {
		return notFound(r)
	}
	switch method {
	case "getIamPolicy":
		return s.getPolicy(key)
	case "setIamPolicy":
		return s.setPolicy(key, r.Body)
	}
	return notFound(r)
}

// getPolicy answers an IAM policy (empty if none was set).
func (s *Server) getPolicy(key string) (int, any) {
	if p, ok := s.policies[key]; ok {
		return http.StatusOK, p
	}
	return http.StatusOK, map[string]any{"etag": "BwYAAAAAAAA=", "version": 1}
}

// setPolicy stores the "policy" of a setIamPolicy body.
func (s *Server) setPolicy(key string, body []byte) (int, any) {
	var req struct {
		Policy map[string]any `json:"policy"`
	}
	if err := json.Unmarshal(body, &req); err != nil || req.Policy == nil {
		return badRequest("setIamPolicy needs a policy")
	}
	if email := s.laggingMember(req.Policy); email != "" {
		return badRequest("Service account " + email + " does not exist.")
	}
	req.Policy["etag"] = base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "etag-%d", len(s.requests)))
	s.policies[key] = req.Policy
	return http.StatusOK, req.Policy
}

// laggingMember returns a service account of policy's members that is
// still unknown to setIamPolicy (see Server.AccountLag), and counts the
// call against it; "" if there is none.
func (s *Server) laggingMember(policy map[string]any) string {
	for _, b := range asList(policy["bindings"]) {
		binding, _ := b.(map[string]any)
		for _, m := range asList(binding["members"]) {
			email, ok := strings.CutPrefix(fmt.Sprint(m), "serviceAccount:")
			if ok && s.lagging[email] > 0 {
				s.lagging[email]--
				return email
			}
		}
	}
	return ""
}

// merge copies the top-level fields of patch named by mask (all if empty).
func merge(dst, patch map[string]any, mask string) {
	if mask == "" {
		for k, v := range patch {
			dst[k] = v
		}
		return
	}
	for _, path := range strings.Split(mask, ",") {
		top := strings.SplitN(path, ".", 2)[0]
		top = snakeToCamel(top)
		if v, ok := patch[top]; ok {
			dst[top] = v
		} else {
			delete(dst, top)
		}
	}
}

// snakeToCamel turns an update mask's "build_config" into "buildConfig".
func snakeToCamel(s string) string {
	parts := strings.Split(s, "_")
	for i := 1; i < len(parts); i++ {
		if parts[i] != "" {
			parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
		}
	}
	return strings.Join(parts, "")
}

// decode parses a JSON object; junk gives an empty map.
func decode(body []byte) map[string]any {
	m := map[string]any{}
	json.Unmarshal(body, &m) //nolint:errcheck // an empty map is the answer to junk
	return m
}

// clone deep-copies a JSON object (numbers become float64).
func clone(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	b, _ := json.Marshal(m)
	var out map[string]any
	json.Unmarshal(b, &out) //nolint:errcheck // round trip of our own JSON
	return out
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// jsonPath walks nested maps.
func jsonPath(v any, keys ...string) any {
	for _, k := range keys {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	return v
}

// asList returns v as a JSON array (nil if it is not one).
func asList(v any) []any {
	l, _ := v.([]any)
	return l
}
