package deploytest

import (
	"net/http"
	"strings"
)

// pubsub: topics, subscriptions (create, get, patch) and their IAM policies.
func (s *Server) pubsub(r Request) (int, any) {
	p := strings.TrimPrefix(r.Path, "/v1/")
	if i := strings.LastIndex(p, ":"); i >= 0 {
		return s.policyMethod(r, "pubsub:"+p[:i], p[i+1:])
	}
	key := "pubsub:" + p
	for _, kind := range []string{"topics", "subscriptions"} {
		if r.Method == http.MethodGet && p == "projects/"+s.Project+"/"+kind {
			return http.StatusOK, map[string]any{kind: s.list(key + "/")}
		}
	}
	switch r.Method {
	case http.MethodGet:
		return s.get(r, key)
	case http.MethodPut:
		body := decode(r.Body)
		body["name"] = p
		if strings.Contains(p, "/subscriptions/") {
			topic, _ := body["topic"].(string)
			if _, ok := s.res["pubsub:"+topic]; !ok {
				return notFound(r)
			}
			if _, ok := body["ackDeadlineSeconds"]; !ok {
				body["ackDeadlineSeconds"] = 10
			}
			body["state"] = "ACTIVE"
		}
		return s.create(key, body)
	case http.MethodPatch:
		cur, ok := s.res[key]
		if !ok {
			return notFound(r)
		}
		body := decode(r.Body)
		patch, _ := body["subscription"].(map[string]any)
		mask, _ := body["updateMask"].(string)
		merge(cur, patch, mask)
		return http.StatusOK, cur
	}
	return notFound(r)
}
