package deploytest

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// run: Cloud Run source builds (v2 builds:submit, answered with a finished
// Cloud Build operation), services (Knative v1 API) and their IAM policies.
func (s *Server) run(r Request) (int, any) {
	if r.Method == http.MethodPost && strings.HasSuffix(r.Path, "/builds:submit") {
		return s.submitBuild(r)
	}
	if strings.HasPrefix(r.Path, "/apis/serving.knative.dev/v1/namespaces/") {
		return s.knative(r)
	}
	p := strings.TrimPrefix(r.Path, "/v1/")
	if svc, method, ok := strings.Cut(p, ":"); ok {
		return s.policyMethod(r, "run:"+svc, method)
	}
	return notFound(r)
}

// knative: Cloud Run services in the Knative shape gcloud run deploy uses.
// A service is stored under its v1 resource name (for IAM) and answered as
// ready at once.
func (s *Server) knative(r Request) (int, any) {
	region := strings.TrimSuffix(r.Host, "-run.fake")
	seg := strings.Split(strings.TrimPrefix(r.Path, "/apis/serving.knative.dev/v1/namespaces/"), "/")
	if region == r.Host || len(seg) < 2 || seg[1] != "services" {
		return notFound(r)
	}
	project := seg[0]
	key := func(name string) string {
		return "run:projects/" + project + "/locations/" + region + "/services/" + name
	}
	switch {
	case r.Method == http.MethodGet && len(seg) == 3:
		return s.get(r, key(seg[2]))
	case r.Method == http.MethodPost && len(seg) == 2:
		svc := decode(r.Body)
		name, _ := jsonPath(svc, "metadata", "name").(string)
		if _, ok := s.res[key(name)]; ok {
			return conflict(name)
		}
		s.readyService(svc, project, region, name, 1)
		s.res[key(name)] = svc
		return http.StatusOK, svc
	case r.Method == http.MethodPut && len(seg) == 3:
		old, ok := s.res[key(seg[2])]
		if !ok {
			return notFound(r)
		}
		gen, _ := jsonPath(old, "metadata", "generation").(int)
		svc := decode(r.Body)
		s.readyService(svc, project, region, seg[2], gen+1)
		s.res[key(seg[2])] = svc
		return http.StatusOK, svc
	}
	return notFound(r)
}

// readyService fills the metadata and status of a Knative service that is
// serving its latest revision.
func (s *Server) readyService(svc map[string]any, project, region, name string, generation int) {
	meta, _ := svc["metadata"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
		svc["metadata"] = meta
	}
	meta["name"], meta["namespace"] = name, s.ProjectNumber
	meta["generation"], meta["uid"] = generation, "0d1e2f3a-4b5c-4d6e-8f90-"+fmt.Sprintf("%012d", generation)
	meta["selfLink"] = "/apis/serving.knative.dev/v1/namespaces/" + s.ProjectNumber + "/services/" + name
	meta["resourceVersion"] = fmt.Sprintf("AAY%d", generation)
	revision := fmt.Sprintf("%s-%05d-abc", name, generation)
	url := "https://" + name + "-" + s.ProjectNumber + "." + region + ".run.app"
	ready := func(t string) map[string]any {
		return map[string]any{"type": t, "status": "True", "lastTransitionTime": "2026-11-24T08:00:00Z"}
	}
	// Cloud Run defaults the traffic to the latest revision, and reports
	// each target with its revision.
	spec, _ := svc["spec"].(map[string]any)
	if spec == nil {
		spec = map[string]any{}
		svc["spec"] = spec
	}
	targets, _ := spec["traffic"].([]any)
	if len(targets) == 0 {
		targets = []any{map[string]any{"latestRevision": true, "percent": 100}}
		spec["traffic"] = targets
	}
	var traffic []any
	for _, t := range targets {
		target := clone(t.(map[string]any))
		if latest, _ := target["latestRevision"].(bool); latest {
			target["revisionName"] = revision
		}
		traffic = append(traffic, target)
	}
	svc["status"] = map[string]any{
		"observedGeneration":        generation,
		"conditions":                []any{ready("Ready"), ready("ConfigurationsReady"), ready("RoutesReady")},
		"latestReadyRevisionName":   revision,
		"latestCreatedRevisionName": revision,
		"url":                       url,
		"address":                   map[string]any{"url": url},
		"traffic":                   traffic,
	}
}

// submitBuild answers Cloud Run's builds:submit with a build that already
// succeeded; its operation and the build itself are served by cloudBuild.
func (s *Server) submitBuild(r Request) (int, any) {
	seg := strings.Split(strings.TrimPrefix(r.Path, "/v2/"), "/") // projects P locations R builds:submit
	if len(seg) != 5 {
		return notFound(r)
	}
	region := seg[3]
	s.opSeq++
	id := fmt.Sprintf("b0d5e1f2-0000-4000-8000-%012d", s.opSeq)
	build := map[string]any{
		"@type":     "type.googleapis.com/google.devtools.cloudbuild.v1.Build",
		"id":        id,
		"name":      "projects/" + s.ProjectNumber + "/locations/" + region + "/builds/" + id,
		"projectId": s.Project,
		"status":    "SUCCESS",
		"logUrl":    "https://console.cloud.google.com/cloud-build/builds;region=" + region + "/" + id,
		"results": map[string]any{"images": []any{map[string]any{
			"name":   region + "-docker.pkg.dev/" + s.Project + "/cloud-run-source-deploy/image",
			"digest": "sha256:" + strings.Repeat("ab", 32),
		}}},
	}
	s.res["cloudbuild:"+build["name"].(string)] = build
	opName := "projects/" + s.Project + "/locations/" + region + "/operations/" + id
	op := map[string]any{"name": opName, "done": true, "response": build,
		"metadata": map[string]any{
			"@type": "type.googleapis.com/google.devtools.cloudbuild.v1.BuildOperationMetadata",
			"build": build,
		}}
	s.res["op:"+opName] = op
	return http.StatusOK, map[string]any{
		"buildOperation": op,
		"baseImageUri":   region + "-docker.pkg.dev/serverless-runtimes/google-24/runtimes/go126",
	}
}

// cloudBuild: the default build service account (gcloud checks its roles),
// build operations and builds.
func (s *Server) cloudBuild(r Request) (int, any) {
	p := strings.TrimPrefix(r.Path, "/v1/")
	if r.Method == http.MethodGet && strings.Contains(p, "/operations/") {
		return s.get(r, "op:"+p)
	}
	if r.Method == http.MethodGet && strings.Contains(p, "/builds/") {
		return s.get(r, "cloudbuild:"+p)
	}
	if r.Method == http.MethodGet && strings.HasSuffix(r.Path, "/defaultServiceAccount") {
		return http.StatusOK, map[string]any{
			"name": strings.TrimPrefix(r.Path, "/v1/"),
			"serviceAccountEmail": "projects/" + s.Project + "/serviceAccounts/" +
				s.ProjectNumber + "-compute@developer.gserviceaccount.com",
		}
	}
	return notFound(r)
}

// artifactRegistry: Docker repositories (Cloud Run source deploys create
// cloud-run-source-deploy) and their operations.
func (s *Server) artifactRegistry(r Request) (int, any) {
	p := strings.TrimPrefix(r.Path, "/v1/")
	switch {
	case r.Method == http.MethodGet && strings.Contains(p, "/operations/"):
		return s.get(r, "op:"+p)
	case r.Method == http.MethodGet:
		return s.get(r, "artifactregistry:"+p)
	case r.Method == http.MethodPost && strings.HasSuffix(p, "/repositories"):
		q, _ := url.ParseQuery(r.Query)
		repo := decode(r.Body)
		repo["name"] = p + "/" + q.Get("repositoryId")
		if status, out := s.create("artifactregistry:"+repo["name"].(string), repo); status != http.StatusOK {
			return status, out
		}
		return http.StatusOK, s.operation(strings.TrimSuffix(p, "/repositories"), repo)
	}
	return notFound(r)
}
