package deploytest

import (
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// checkResources checks what both targets create: APIs, service accounts,
// bucket, topics, dataset, tables and view.
func checkResources(t *testing.T, reqs []Request, existing map[string]map[string]any) {
	enable := one(t, reqs, http.MethodPost, "serviceusage", "/services:batchEnable").JSON()
	for _, api := range []string{"cloudfunctions", "run", "cloudbuild", "artifactregistry", "eventarc", "pubsub", "storage", "bigquery", "bigquerystorage", "iam"} {
		if !strings.Contains(field(enable, "serviceIds"), `"`+api+`.googleapis.com"`) {
			t.Errorf("batchEnable %s lacks %s.googleapis.com", field(enable, "serviceIds"), api)
		}
	}
	var accounts []string
	for _, r := range find(reqs, http.MethodPost, "iam", "/projects/proj-1/serviceAccounts") {
		accounts = append(accounts, field(r.JSON(), "accountId"))
	}
	if want := []string{"enrich-event-runtime", "enrich-event-invoker", "enrich-event-build"}; !reflect.DeepEqual(accounts, want) {
		t.Errorf("service accounts created = %v, want %v", accounts, want)
	}
	var buckets []Request
	for _, r := range find(reqs, http.MethodPost, "storage", "/storage/v1/b") {
		if field(r.JSON(), "name") == "proj-1-device-metadata" {
			buckets = append(buckets, r)
		}
	}
	if _, ok := existing["storage:b/proj-1-device-metadata"]; ok != (len(buckets) == 0) || len(buckets) > 1 {
		t.Errorf("bucket created %d times; it existed before: %v", len(buckets), ok)
	}
	for _, b := range buckets {
		if got, want := field(b.JSON(), "iamConfiguration"), `{"publicAccessPrevention":"enforced","uniformBucketLevelAccess":{"enabled":true}}`; !strings.Contains(b.Query, "project=proj-1") || got != want {
			t.Errorf("bucket create %s: iamConfiguration = %s, want %s", b, got, want)
		}
		// A cold start after a bad upload serves the newest older version:
		// the bucket keeps versions, the last 3 noncurrent ones
		// (numNewerVersions counts the live one too).
		if got, want := field(b.JSON(), "lifecycle"), `{"rule":[{"action":{"type":"Delete"},"condition":{"isLive":false,"numNewerVersions":4}}]}`; got != want {
			t.Errorf("bucket create %s: lifecycle = %s, want %s", b, got, want)
		}
		if got := field(one(t, reqs, http.MethodPatch, "storage", "/storage/v1/b/proj-1-device-metadata").JSON(), "versioning"); got != `{"enabled":true}` {
			t.Errorf("bucket update: versioning = %s, want {\"enabled\":true}", got)
		}
	}
	for _, topic := range []string{"device-events", "device-events-dead-letter"} {
		creates := len(find(reqs, http.MethodPut, "pubsub", "/v1/projects/proj-1/topics/"+topic))
		if _, ok := existing["pubsub:projects/proj-1/topics/"+topic]; ok != (creates == 0) || creates > 1 {
			t.Errorf("topic %s created %d times; it existed before: %v", topic, creates, ok)
		}
	}
	dlqSub := one(t, reqs, http.MethodPut, "pubsub", "/v1/projects/proj-1/subscriptions/device-events-dead-letter-sub").JSON()
	if got := field(dlqSub, "topic") + " " + field(dlqSub, "expirationPolicy") + " " + field(dlqSub, "messageRetentionDuration"); got != dlqTopic+" {} 2678400s" {
		t.Errorf("dead-letter subscription topic, expiration and retention = %s, want %s {} 2678400s", got, dlqTopic)
	}

	if _, ok := existing["bigquery:projects/proj-1/datasets/device_events"]; ok {
		if creates := find(reqs, http.MethodPost, "bigquery", "/projects/proj-1/datasets"); len(creates) != 0 {
			t.Errorf("the existing dataset was created again: %v", creates)
		}
	} else {
		dataset := one(t, reqs, http.MethodPost, "bigquery", "/projects/proj-1/datasets").JSON()
		if got := field(dataset, "location"); got != "us-central1" {
			t.Errorf("dataset location = %s, want us-central1", got)
		}
	}
	tables := map[string]map[string]any{}
	for _, r := range find(reqs, http.MethodPost, "bigquery", "/datasets/device_events/tables") {
		tables[field(r.JSON(), "tableReference", "tableId")] = r.JSON()
	}
	for _, tc := range []struct{ table, schema, partitioning, clustering string }{
		{"events", "rows.json", `{"field":"event_time","type":"DAY"}`, `{"fields":["device_id"]}`},
		{"events_error_records", "error_records.json", `{"field":"timestamp","type":"DAY"}`, ""},
	} {
		table := tables[tc.table]
		if table == nil {
			t.Errorf("table %s was not created", tc.table)
			continue
		}
		schema, err := os.ReadFile(filepath.Join("..", "..", "sink", "schema", tc.schema))
		if err != nil {
			t.Fatal(err)
		}
		if got := field(table, "schema", "fields"); !jsonEqual(t, []byte(got), schema) {
			t.Errorf("table %s schema = %s, want sink/schema/%s: %s", tc.table, got, tc.schema, schema)
		}
		if got := field(table, "timePartitioning"); got != tc.partitioning {
			t.Errorf("table %s partitioning = %s, want %s", tc.table, got, tc.partitioning)
		}
		if got := field(table, "clustering"); got != tc.clustering {
			t.Errorf("table %s clustering = %s, want %s", tc.table, got, tc.clustering)
		}
	}
	view := tables["events_dedup"]
	query := field(view, "view", "query")
	for _, want := range []string{"ROW_NUMBER() OVER (PARTITION BY message_id", "FROM `proj-1.device_events.events`", "WHERE rn = 1"} {
		if !strings.Contains(query, want) {
			t.Errorf("view query %q lacks %q", query, want)
		}
	}
	if got := field(view, "view", "useLegacySql"); got != "false" {
		t.Errorf("view useLegacySql = %s, want false", got)
	}
}

// checkBindings checks that the IAM policies set grant exactly the roles of
// least privilege, each on its one resource.
func checkBindings(t *testing.T, reqs []Request, subscription string) {
	want := uniqueBindings([]binding{
		{"storage:/storage/v1/b/proj-1-device-metadata", "roles/storage.objectViewer", "serviceAccount:" + runtimeEmail},
		{"bigquery:/bigquery/v2/projects/proj-1/datasets/device_events/tables/events", "roles/bigquery.dataEditor", "serviceAccount:" + runtimeEmail},
		{"bigquery:/bigquery/v2/projects/proj-1/datasets/device_events/tables/events_error_records", "roles/bigquery.dataEditor", "serviceAccount:" + runtimeEmail},
		{"run:/v1/projects/proj-1/locations/us-central1/services/enrich-event", "roles/run.invoker", "serviceAccount:" + invokerEmail},
		{"pubsub:/v1/" + dlqTopic, "roles/pubsub.publisher", pubsubAgent},
		{"pubsub:/v1/" + subscription, "roles/pubsub.subscriber", pubsubAgent},
		{"cloudresourcemanager:/v1/projects/proj-1", "roles/cloudbuild.builds.builder", "serviceAccount:" + buildEmail},
		{"iam:/v1/projects/proj-1/serviceAccounts/" + invokerEmail, "roles/iam.serviceAccountTokenCreator", pubsubAgent},
	})
	got := grantedBindings(t, reqs)
	for _, b := range got {
		if strings.HasPrefix(b.resource, "cloudresourcemanager:") && strings.Contains(b.member, runtimeEmail) {
			t.Errorf("runtime service account granted %s at project level", b.role)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("IAM bindings set:\n  %s\nwant exactly:\n  %s", join(got), join(want))
	}
}

// checkIdempotent checks that a second run created nothing and redeployed
// the code once.
func checkIdempotent(t *testing.T, reqs []Request, deploy func(Request) bool) {
	deploys := 0
	for _, r := range reqs {
		if isCreate(r) {
			t.Errorf("second run created something: %s %s", r, r.Body)
		}
		if deploy(r) {
			deploys++
		}
	}
	if deploys != 1 {
		t.Errorf("second run redeployed %d times, want 1", deploys)
	}
}

// checkNoRealHosts checks that no request tried to leave the fake.
func checkNoRealHosts(t *testing.T, reqs []Request) {
	for _, r := range reqs {
		if r.API == "" {
			t.Errorf("request to a real host: %s", r)
		}
	}
}

// stableKeys drops what every deploy adds anew: operations, builds and
// uploaded source archives.
func stableKeys(keys []string) []string {
	var out []string
	for _, k := range keys {
		if strings.HasPrefix(k, "op:") || strings.HasPrefix(k, "cloudbuild:") ||
			strings.HasPrefix(k, "storage:/upload-source/") || strings.HasPrefix(k, "storage:b/run-sources-") && strings.Contains(k, "/o/") {
			continue
		}
		out = append(out, k)
	}
	return out
}

// samePolicies compares IAM policies, ignoring etags.
func samePolicies(a, b map[string]map[string]any) bool {
	strip := func(m map[string]map[string]any) map[string]any {
		out := map[string]any{}
		for k, p := range m {
			p = clone(p)
			delete(p, "etag")
			out[k] = p
		}
		return out
	}
	return reflect.DeepEqual(strip(a), strip(b))
}

func join(bs []binding) string {
	var lines []string
	for _, b := range bs {
		lines = append(lines, b.String())
	}
	return strings.Join(lines, "\n  ")
}

// failed lists the requests the fake answered with an error.
func failed(reqs []Request) string {
	var lines []string
	for _, r := range reqs {
		if r.Status >= 400 {
			lines = append(lines, r.String())
		}
	}
	return strings.Join(lines, "\n")
}

// alertChannel is the notification channel the deploy tests pass as
// --alert-channel; the fake refuses policies naming a channel it lacks.
const alertChannel = "projects/proj-1/notificationChannels/42"

// checkAlerts checks the alert policies the run created: one for each of
// the three display names that the project did not have before (existing),
// each notifying alertChannel, watching the subscription that feeds the
// service (full name), the dead-letter subscription and the service's
// logs. It also checks that Cloud Monitoring was enabled.
func checkAlerts(t *testing.T, reqs []Request, subscription string, existing map[string]map[string]any) {
	t.Helper()
	enable := one(t, reqs, http.MethodPost, "serviceusage", "/services:batchEnable").JSON()
	if !strings.Contains(field(enable, "serviceIds"), `"monitoring.googleapis.com"`) {
		t.Errorf("batchEnable %s lacks monitoring.googleapis.com", field(enable, "serviceIds"))
	}
	had := map[string]bool{}
	for key, v := range existing {
		if strings.HasPrefix(key, "monitoring:projects/proj-1/alertPolicies/") {
			had[field(v, "displayName")] = true
		}
	}
	created := map[string][]map[string]any{}
	for _, r := range find(reqs, http.MethodPost, "monitoring", "/v3/projects/proj-1/alertPolicies") {
		created[field(r.JSON(), "displayName")] = append(created[field(r.JSON(), "displayName")], r.JSON())
	}
	subID := subscription[strings.LastIndex(subscription, "/")+1:]
	pubsubFilter := func(metric, sub string) string {
		return `metric.type="pubsub.googleapis.com/subscription/` + metric + `" AND resource.type="pubsub_subscription" AND resource.labels.project_id="proj-1" AND resource.labels.subscription_id="` + sub + `"`
	}
	const maxPerMinute = `[{"alignmentPeriod":"60s","perSeriesAligner":"ALIGN_MAX"}]`
	for _, tc := range []struct {
		name string
		doc  string            // in the documentation
		want map[string]string // field path (numbers index lists) -> JSON text
	}{{
		name: "enrich-event: events waiting",
		doc:  "ERROR lines",
		want: map[string]string{
			"conditions.0.conditionThreshold.filter":         pubsubFilter("oldest_unacked_message_age", subID),
			"conditions.0.conditionThreshold.aggregations":   maxPerMinute,
			"conditions.0.conditionThreshold.comparison":     "COMPARISON_GT",
			"conditions.0.conditionThreshold.thresholdValue": "600",
			"conditions.0.conditionThreshold.duration":       "300s",
		},
	}, {
		name: "enrich-event: dead letters",
		doc:  "go run ./cmd/replay -project=proj-1 -subscription=device-events-dead-letter-sub -topic=device-events",
		want: map[string]string{
			"conditions.0.conditionThreshold.filter":         pubsubFilter("num_undelivered_messages", "device-events-dead-letter-sub"),
			"conditions.0.conditionThreshold.aggregations":   maxPerMinute,
			"conditions.0.conditionThreshold.comparison":     "COMPARISON_GT",
			"conditions.0.conditionThreshold.thresholdValue": "0",
			"conditions.0.conditionThreshold.duration":       "60s",
		},
	}, {
		name: "enrich-event: metadata rejected",
		doc:  "upload a good file",
		want: map[string]string{
			"conditions.0.conditionMatchedLog.filter": `resource.type="cloud_run_revision" AND resource.labels.service_name="enrich-event" AND (jsonPayload.message=~"^metadata rejected" OR jsonPayload.message="metadata still rejected" OR jsonPayload.message="metadata load failed")`,
			"alertStrategy": `{"autoClose":"86400s","notificationRateLimit":{"period":"3600s"}}`,
		},
	}} {
		policies := created[tc.name]
		delete(created, tc.name)
		if had[tc.name] {
			if len(policies) != 0 {
				t.Errorf("alert policy %q created %d times, but the project had one", tc.name, len(policies))
			}
			continue
		}
		if len(policies) != 1 {
			t.Errorf("alert policy %q created %d times, want 1", tc.name, len(policies))
			continue
		}
		p := policies[0]
		tc.want["notificationChannels"] = `["` + alertChannel + `"]`
		tc.want["combiner"] = "OR"
		tc.want["enabled"] = "true"
		tc.want["documentation.mimeType"] = "text/markdown"
		for path, want := range tc.want {
			if got := listField(p, strings.Split(path, ".")...); got != want {
				t.Errorf("alert policy %q: %s = %s, want %s", tc.name, path, got, want)
			}
		}
		if n := len(asList(p["conditions"])); n != 1 {
			t.Errorf("alert policy %q has %d conditions, want 1", tc.name, n)
		}
		if doc := field(p, "documentation", "content"); !strings.Contains(doc, tc.doc) {
			t.Errorf("alert policy %q: documentation %q lacks %q", tc.name, doc, tc.doc)
		}
	}
	for name := range created {
		t.Errorf("alert policy %q created, which is none of the three", name)
	}
}

// listField is field that also indexes lists: "conditions", "0", "filter".
func listField(m map[string]any, path ...string) string {
	var v any = m
	for _, k := range path {
		if l, ok := v.([]any); ok {
			i, err := strconv.Atoi(k)
			if err != nil || i >= len(l) {
				return ""
			}
			v = l[i]
			continue
		}
		v = jsonPath(v, k)
	}
	return field(map[string]any{"v": v}, "v")
}
