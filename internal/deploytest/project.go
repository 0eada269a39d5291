package deploytest

import (
	"fmt"
	"net/http"
	"strings"
)

// serviceUsage: list enabled services, batchEnable, enable, get.
func (s *Server) serviceUsage(r Request) (int, any) {
	p := strings.TrimPrefix(r.Path, "/v1/")
	parent := "projects/" + s.ProjectNumber
	service := func(name string) map[string]any {
		state := "DISABLED"
		if s.enabled[name] {
			state = "ENABLED"
		}
		return map[string]any{"name": parent + "/services/" + name, "parent": parent,
			"config": map[string]any{"name": name}, "state": state}
	}
	switch {
	case r.Method == http.MethodGet && strings.HasSuffix(p, "/services"):
		var list []any
		for _, name := range sortedKeys(s.enabled) {
			list = append(list, service(name))
		}
		return http.StatusOK, map[string]any{"services": list}
	case r.Method == http.MethodPost && strings.HasSuffix(p, "/services:batchEnable"):
		var ids []string
		for _, id := range asList(decode(r.Body)["serviceIds"]) {
			ids = append(ids, fmt.Sprint(id))
		}
		for _, id := range ids {
			s.enabled[id] = true
		}
		return http.StatusOK, s.operation("", map[string]any{"@type": "type.googleapis.com/google.api.serviceusage.v1.BatchEnableServicesResponse"})
	case r.Method == http.MethodPost && strings.HasSuffix(p, ":enable"):
		name := strings.TrimSuffix(p[strings.LastIndex(p, "/")+1:], ":enable")
		s.enabled[name] = true
		return http.StatusOK, s.operation("", map[string]any{"@type": "type.googleapis.com/google.api.serviceusage.v1.EnableServiceResponse", "service": service(name)})
	case r.Method == http.MethodGet && strings.Contains(p, "/services/"):
		return http.StatusOK, service(p[strings.LastIndex(p, "/")+1:])
	case r.Method == http.MethodGet && strings.HasPrefix(p, "operations/"):
		return s.get(r, "op:"+p)
	}
	return notFound(r)
}

// resourceManager: the project itself (v1 and v3), and its IAM policy.
func (s *Server) resourceManager(r Request) (int, any) {
	switch {
	case r.Method == http.MethodGet && (r.Path == "/v1/projects/"+s.Project || r.Path == "/v1/projects/"+s.ProjectNumber):
		return http.StatusOK, map[string]any{"projectId": s.Project, "projectNumber": s.ProjectNumber,
			"name": s.Project, "lifecycleState": "ACTIVE"}
	case r.Method == http.MethodGet && (r.Path == "/v3/projects/"+s.Project || r.Path == "/v3/projects/"+s.ProjectNumber):
		return http.StatusOK, map[string]any{"projectId": s.Project, "name": "projects/" + s.ProjectNumber,
			"state": "ACTIVE", "parent": "organizations/1"}
	case r.Method == http.MethodPost && strings.HasSuffix(r.Path, ":getIamPolicy"):
		return s.getPolicy("cloudresourcemanager:projects/" + s.Project)
	case r.Method == http.MethodPost && strings.HasSuffix(r.Path, ":setIamPolicy"):
		return s.setPolicy("cloudresourcemanager:projects/"+s.Project, r.Body)
	}
	return notFound(r)
}

// iam: service accounts (get by email, create) and their IAM policies.
func (s *Server) iam(r Request) (int, any) {
	p := strings.TrimPrefix(r.Path, "/v1/")
	if i := strings.LastIndex(p, ":"); i >= 0 && strings.Contains(p, "/serviceAccounts/") {
		email := p[strings.LastIndex(p[:i], "/")+1 : i]
		return s.policyMethod(r, "iam:"+email, p[i+1:])
	}
	switch {
	case r.Method == http.MethodGet && p == "projects/"+s.Project+"/serviceAccounts":
		return http.StatusOK, map[string]any{"accounts": s.list("iam:")}
	case r.Method == http.MethodGet && strings.Contains(p, "/serviceAccounts/"):
		email := p[strings.LastIndex(p, "/")+1:]
		return s.get(r, "iam:"+email)
	case r.Method == http.MethodPost && p == "projects/"+s.Project+"/serviceAccounts":
		body := decode(r.Body)
		id, _ := body["accountId"].(string)
		email := id + "@" + s.Project + ".iam.gserviceaccount.com"
		sa := map[string]any{"name": "projects/" + s.Project + "/serviceAccounts/" + email,
			"projectId": s.Project, "email": email, "uniqueId": "1" + s.ProjectNumber,
			"oauth2ClientId": "1" + s.ProjectNumber}
		if in, ok := body["serviceAccount"].(map[string]any); ok {
			sa["displayName"] = in["displayName"]
		}
		if _, exists := s.res["iam:"+email]; !exists && s.AccountLag > 0 {
			s.lagging[email] = s.AccountLag
		}
		return s.create("iam:"+email, sa)
	}
	return notFound(r)
}
