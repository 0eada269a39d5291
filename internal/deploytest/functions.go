package deploytest

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// functions: Cloud Functions v2 (runtimes, upload URLs, functions,
// operations). Creating a function also creates what Google would: its
// Cloud Run service, its Eventarc trigger and the trigger's subscription.
func (s *Server) functions(r Request) (int, any) {
	p := strings.TrimPrefix(r.Path, "/v2/")
	seg := strings.Split(p, "/") // projects P locations R functions F
	if len(seg) < 4 || seg[0] != "projects" || seg[2] != "locations" {
		return notFound(r)
	}
	parent := strings.Join(seg[:4], "/")
	switch {
	case r.Method == http.MethodGet && len(seg) == 5 && seg[4] == "runtimes":
		return http.StatusOK, map[string]any{"runtimes": []any{
			map[string]any{"name": "go125", "displayName": "Go 1.25", "stage": "GA", "environment": "GEN_2"},
			map[string]any{"name": "go126", "displayName": "Go 1.26", "stage": "GA", "environment": "GEN_2"},
		}}
	case r.Method == http.MethodPost && p == parent+"/functions:generateUploadUrl":
		s.opSeq++
		object := fmt.Sprintf("source-%d.zip", s.opSeq)
		return http.StatusOK, map[string]any{
			"uploadUrl": "http://storage.fake/upload-source/" + object,
			"storageSource": map[string]any{
				"bucket": "gcf-v2-uploads-" + s.ProjectNumber + "." + seg[3] + ".cloudfunctions.appspot.com",
				"object": object,
			},
		}
	case r.Method == http.MethodGet && len(seg) == 6 && seg[4] == "operations":
		return s.get(r, "op:"+p)
	case r.Method == http.MethodGet && len(seg) == 6 && seg[4] == "functions":
		return s.get(r, "cloudfunctions:"+p)
	case r.Method == http.MethodPost && len(seg) == 5 && seg[4] == "functions":
		q, _ := url.ParseQuery(r.Query)
		name := parent + "/functions/" + q.Get("functionId")
		if _, ok := s.res["cloudfunctions:"+name]; ok {
			return conflict(name)
		}
		fn := decode(r.Body)
		fn["name"] = name
		s.res["cloudfunctions:"+name] = fn
		if op := s.failDeploy(parent, fn); op != nil {
			return http.StatusOK, op
		}
		s.populateFunction(fn, seg[1], seg[3], q.Get("functionId"))
		return http.StatusOK, s.operation(parent, fn)
	case r.Method == http.MethodPatch && len(seg) == 6 && seg[4] == "functions":
		fn, ok := s.res["cloudfunctions:"+p]
		if !ok {
			return notFound(r)
		}
		q, _ := url.ParseQuery(r.Query)
		if touchesTrigger(q.Get("updateMask")) {
			s.dropTrigger(fn)
		}
		merge(fn, decode(r.Body), q.Get("updateMask"))
		if op := s.failDeploy(parent, fn); op != nil {
			return http.StatusOK, op
		}
		s.populateFunction(fn, seg[1], seg[3], seg[5])
		return http.StatusOK, s.operation(parent, fn)
	}
	return notFound(r)
}

// failDeploy returns the failed operation of a deployment whose build fails
// for want of the build account's permissions (see Server.BuildLag) or
// whose trigger Eventarc refuses (see Server.EventarcLag), and marks fn
// FAILED; nil if the deployment goes ahead.
func (s *Server) failDeploy(parent string, fn map[string]any) map[string]any {
	_, trigger := fn["eventTrigger"]
	if s.BuildLag == 0 && (!trigger || s.EventarcLag == 0) {
		return nil
	}
	fn["state"] = "FAILED"
	op := s.operation(parent, nil)
	delete(op, "response")
	if s.BuildLag > 0 {
		s.BuildLag--
		op["error"] = map[string]any{"code": 3, "message": "Build failed with status: FAILURE. Could not build the function due to " +
			"a missing permission on the build service account. If you didn't revoke that permission explicitly, this could be " +
			"caused by a change in the organization policies. Please refer to the following documentation for more details and " +
			"resolution: https://cloud.google.com/functions/docs/troubleshooting#build-service-account"}
		return op
	}
	s.EventarcLag--
	name := fmt.Sprint(fn["name"])
	op["error"] = map[string]any{"code": 9, "message": "Validation failed for trigger " + parent +
		"/triggers/" + name[strings.LastIndex(name, "/")+1:] + "-551292: Invalid resource state for \"\": Permission denied while using the " +
		"Eventarc Service Agent. If you recently started to use Eventarc, it may take a few minutes before all " +
		"necessary permissions are propagated to the Service Agent. Otherwise, verify that it has Eventarc Service Agent role."}
	return op
}

// touchesTrigger reports whether an update mask names the event trigger.
func touchesTrigger(mask string) bool {
	for _, path := range strings.Split(mask, ",") {
		if top := strings.SplitN(path, ".", 2)[0]; top == "event_trigger" || top == "eventTrigger" {
			return true
		}
	}
	return false
}

// dropTrigger deletes fn's Eventarc trigger and its subscription, as Cloud
// Functions does when an update gives the trigger again: it recreates
// both, and the old subscription's messages are lost. The next trigger
// gets another name (TriggerRecreations counts them).
func (s *Server) dropTrigger(fn map[string]any) {
	et, _ := fn["eventTrigger"].(map[string]any)
	trigger, _ := et["trigger"].(string)
	if trigger == "" {
		return
	}
	if t, ok := s.res["eventarc:"+trigger]; ok {
		transport, _ := t["transport"].(map[string]any)
		pubsub, _ := transport["pubsub"].(map[string]any)
		delete(s.res, "pubsub:"+fmt.Sprint(pubsub["subscription"]))
	}
	delete(s.res, "eventarc:"+trigger)
	s.TriggerRecreations++
}

// populateFunction fills a function's output-only fields and makes sure its
// service, trigger and trigger subscription exist.
func (s *Server) populateFunction(fn map[string]any, project, region, id string) {
	fn["environment"], fn["state"] = "GEN_2", "ACTIVE"
	fn["url"] = "https://" + region + "-" + project + ".cloudfunctions.net/" + id
	fn["updateTime"] = "2026-11-24T08:00:00Z"
	service := "projects/" + project + "/locations/" + region + "/services/" + id
	sc, _ := fn["serviceConfig"].(map[string]any)
	if sc == nil {
		sc = map[string]any{}
		fn["serviceConfig"] = sc
	}
	sc["service"], sc["uri"] = service, "https://"+id+"-abc123-uc.a.run.app"
	sc["revision"] = id + "-00001-abc"
	s.res["run:"+service] = map[string]any{"name": service}

	et, _ := fn["eventTrigger"].(map[string]any)
	if et == nil {
		return
	}
	suffix := fmt.Sprintf("%d", 551292+s.TriggerRecreations)
	trigger := "projects/" + project + "/locations/" + region + "/triggers/" + id + "-" + suffix
	sub := "projects/" + project + "/subscriptions/eventarc-" + region + "-" + id + "-" + suffix + "-sub-712"
	topic, _ := et["pubsubTopic"].(string)
	et["trigger"], et["triggerRegion"] = trigger, region
	et["eventType"] = "google.cloud.pubsub.topic.v1.messagePublished"
	if _, ok := s.res["eventarc:"+trigger]; !ok {
		s.res["eventarc:"+trigger] = map[string]any{
			"name": trigger, "uid": "5b1b8d3e", "serviceAccount": et["serviceAccountEmail"],
			"eventFilters": []any{map[string]any{"attribute": "type", "value": et["eventType"]}},
			"destination":  map[string]any{"cloudRun": map[string]any{"service": id, "region": region}},
			"transport":    map[string]any{"pubsub": map[string]any{"topic": topic, "subscription": sub}},
		}
	}
	if _, ok := s.res["pubsub:"+sub]; !ok {
		s.res["pubsub:"+sub] = map[string]any{
			"name": sub, "topic": topic, "ackDeadlineSeconds": 600, "state": "ACTIVE",
			"pushConfig": map[string]any{"pushEndpoint": sc["uri"],
				"oidcToken": map[string]any{"serviceAccountEmail": et["serviceAccountEmail"]}},
			"retryPolicy": map[string]any{"minimumBackoff": "10s", "maximumBackoff": "600s"},
		}
	}
}

// eventarc: triggers (read only; functions create them).
func (s *Server) eventarc(r Request) (int, any) {
	if r.Method == http.MethodGet {
		return s.get(r, "eventarc:"+strings.TrimPrefix(r.Path, "/v1/"))
	}
	return notFound(r)
}
