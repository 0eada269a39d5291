package deploytest

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// monitoring: Cloud Monitoring v3 alert policies (list, get, create) and the
// notification channels they name, which the test stores with Put under
// "monitoring:projects/P/notificationChannels/ID".
//
// As the API does, create gives a policy a new name every time, so a
// second create of the same display name makes a second policy; and it
// refuses a policy with unknown fields, a condition of no known type, a
// log-match condition without alertStrategy.notificationRateLimit, or an
// unknown channel.
func (s *Server) monitoring(r Request) (int, any) {
	p := strings.TrimPrefix(r.Path, "/v3/")
	policies := "projects/" + s.Project + "/alertPolicies"
	switch {
	case r.Method == http.MethodGet && p == policies:
		// gcloud alpha monitoring policies list (SDK 528) applies --filter
		// itself and sends none: a filter here is a gcloud that changed.
		if q, _ := url.ParseQuery(r.Query); q.Get("filter") != "" {
			return badRequest("deploytest: the fake does not filter alert policies, and gcloud sent filter=" + q.Get("filter"))
		}
		list := s.list("monitoring:" + policies + "/")
		return http.StatusOK, map[string]any{"alertPolicies": list, "totalSize": len(list)}
	case r.Method == http.MethodGet && strings.HasPrefix(p, policies+"/"),
		r.Method == http.MethodGet && strings.HasPrefix(p, "projects/"+s.Project+"/notificationChannels/"):
		return s.get(r, "monitoring:"+p)
	case r.Method == http.MethodPost && p == policies:
		policy := decode(r.Body)
		if err := s.checkPolicy(policy); err != nil {
			return badRequest(err.Error())
		}
		id := len(s.list("monitoring:"+policies+"/")) + 1
		for s.res[fmt.Sprintf("monitoring:%s/%d", policies, id)] != nil {
			id++
		}
		policy["name"] = fmt.Sprintf("%s/%d", policies, id)
		for i, c := range asList(policy["conditions"]) {
			c.(map[string]any)["name"] = fmt.Sprintf("%s/conditions/%d", policy["name"], i+1)
		}
		policy["creationRecord"] = map[string]any{"mutateTime": "2026-11-01T00:00:00Z", "mutatedBy": "deployer"}
		return s.create("monitoring:"+policy["name"].(string), policy)
	}
	return notFound(r)
}

// Fields of the AlertPolicy REST shape that a create may set.
var (
	policyFields = map[string]bool{"displayName": true, "documentation": true, "userLabels": true,
		"conditions": true, "combiner": true, "enabled": true, "notificationChannels": true,
		"alertStrategy": true, "severity": true}
	conditionFields = map[string]bool{"displayName": true, "conditionThreshold": true,
		"conditionAbsent": true, "conditionMatchedLog": true, "conditionMonitoringQueryLanguage": true,
		"conditionPrometheusQueryLanguage": true, "conditionSql": true}
	thresholdFields = map[string]bool{"filter": true, "aggregations": true, "denominatorFilter": true,
		"denominatorAggregations": true, "forecastOptions": true, "comparison": true,
		"thresholdValue": true, "duration": true, "trigger": true, "evaluationMissingData": true}
	logMatchFields      = map[string]bool{"filter": true, "labelExtractors": true}
	alertStrategyFields = map[string]bool{"notificationRateLimit": true, "autoClose": true,
		"notificationChannelStrategy": true, "notificationPrompts": true}
	documentationFields = map[string]bool{"content": true, "mimeType": true, "subject": true, "links": true}
)

// checkPolicy refuses what the API refuses of a new alert policy (a subset).
func (s *Server) checkPolicy(p map[string]any) error {
	if err := knownFields("alertPolicy", p, policyFields); err != nil {
		return err
	}
	if doc, ok := p["documentation"].(map[string]any); ok {
		if err := knownFields("documentation", doc, documentationFields); err != nil {
			return err
		}
	}
	conditions := asList(p["conditions"])
	if len(conditions) == 0 {
		return fmt.Errorf("an alert policy needs at least one condition")
	}
	if len(conditions) > 1 && (p["combiner"] == nil || p["combiner"] == "COMBINE_UNSPECIFIED") {
		return fmt.Errorf("a policy of several conditions needs a combiner")
	}
	for _, c := range conditions {
		cond, _ := c.(map[string]any)
		if err := knownFields("condition", cond, conditionFields); err != nil {
			return err
		}
		switch {
		case cond["conditionThreshold"] != nil:
			th, _ := cond["conditionThreshold"].(map[string]any)
			if err := knownFields("conditionThreshold", th, thresholdFields); err != nil {
				return err
			}
			if th["filter"] == nil || th["comparison"] == nil || th["duration"] == nil {
				return fmt.Errorf("conditionThreshold needs filter, comparison and duration")
			}
		case cond["conditionMatchedLog"] != nil:
			lm, _ := cond["conditionMatchedLog"].(map[string]any)
			if err := knownFields("conditionMatchedLog", lm, logMatchFields); err != nil {
				return err
			}
			if lm["filter"] == nil {
				return fmt.Errorf("conditionMatchedLog needs a filter")
			}
			if len(conditions) > 1 {
				return fmt.Errorf("a policy with a conditionMatchedLog condition may have no other condition")
			}
			if jsonPath(p, "alertStrategy", "notificationRateLimit", "period") == nil {
				return fmt.Errorf("log-based alerting policies require alertStrategy.notificationRateLimit")
			}
		case len(cond) <= 1:
			return fmt.Errorf("condition %v has no condition type", cond)
		}
	}
	if as, ok := p["alertStrategy"].(map[string]any); ok {
		if err := knownFields("alertStrategy", as, alertStrategyFields); err != nil {
			return err
		}
	}
	for _, ch := range asList(p["notificationChannels"]) {
		if _, ok := s.res["monitoring:"+fmt.Sprint(ch)]; !ok {
			return fmt.Errorf("notification channel %v not found", ch)
		}
	}
	return nil
}

// knownFields refuses a field not in known, as the API does ("Invalid JSON
// payload received. Unknown name").
func knownFields(what string, m map[string]any, known map[string]bool) error {
	for _, k := range sortedKeys(m) {
		if !known[k] {
			return fmt.Errorf("invalid JSON payload received. Unknown name %q at %s", k, what)
		}
	}
	return nil
}
