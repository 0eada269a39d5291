package deploytest

import (
	"crypto/md5"
	"encoding/base64"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const (
	runtimeEmail = "enrich-event-runtime@proj-1.iam.gserviceaccount.com"
	invokerEmail = "enrich-event-invoker@proj-1.iam.gserviceaccount.com"
	buildEmail   = "enrich-event-build@proj-1.iam.gserviceaccount.com"
	pubsubAgent  = "serviceAccount:service-" + projectNumber + "@gcp-sa-pubsub.iam.gserviceaccount.com"
	dlqTopic     = "projects/proj-1/topics/device-events-dead-letter"
	metadataCSV  = "device_id,asset_tag,location_id,tenant_name\ndev-1,A-1,L-1,acme\n"
)

// TestDeploy runs deploy.sh twice per target with the real gcloud and bq
// against the fake, with --alert-channel, checks what the first run created
// and that the second created nothing.
func TestDeploy(t *testing.T) {
	requireCLIs(t)
	discovery := bigQueryDiscovery(t)
	metadata := filepath.Join(t.TempDir(), "devices.csv")
	if err := os.WriteFile(metadata, []byte(metadataCSV), 0o600); err != nil {
		t.Fatal(err)
	}
	channel := map[string]any{"name": alertChannel, "type": "email", "displayName": "on call"}
	tests := []struct {
		target   string
		existing map[string]map[string]any // resources the project has before the first run
		kept     string                    // the display name of an alert policy the project has
		args     []string
		check    func(t *testing.T, s *Server, reqs []Request) (subscription string)
		deploy   func(r Request) bool // the second run's redeploy request
	}{{
		target: "function",
		// A project that already has the topic, the bucket (without the
		// metadata object), an empty dataset, and one of the alert
		// policies, changed by an operator since a run made it.
		existing: map[string]map[string]any{
			"pubsub:projects/proj-1/topics/device-events": {"name": "projects/proj-1/topics/device-events"},
			"storage:b/proj-1-device-metadata": {"name": "proj-1-device-metadata", "id": "proj-1-device-metadata",
				"kind": "storage#bucket", "location": "US-CENTRAL1", "projectNumber": projectNumber},
			"bigquery:projects/proj-1/datasets/device_events": {"id": "proj-1:device_events",
				"datasetReference": map[string]any{"projectId": project, "datasetId": "device_events"}, "location": "us-central1"},
			"monitoring:" + alertChannel: channel,
			"monitoring:projects/proj-1/alertPolicies/7": {"name": "projects/proj-1/alertPolicies/7",
				"displayName": "enrich-event: dead letters", "combiner": "OR", "enabled": false,
				"conditions": []any{map[string]any{"displayName": "more than 5", "conditionThreshold": map[string]any{
					"filter":     `metric.type="pubsub.googleapis.com/subscription/num_undelivered_messages" AND resource.labels.subscription_id="device-events-dead-letter-sub"`,
					"comparison": "COMPARISON_GT", "thresholdValue": 5, "duration": "600s"}}},
				"notificationChannels": []any{"projects/proj-1/notificationChannels/9"}},
			// Not one of the three, though its name starts the same.
			"monitoring:projects/proj-1/alertPolicies/8": {"name": "projects/proj-1/alertPolicies/8",
				"displayName": "enrich-event: events waiting (staging)", "combiner": "OR",
				"conditions": []any{map[string]any{"displayName": "staging", "conditionThreshold": map[string]any{
					"filter":     `metric.type="pubsub.googleapis.com/subscription/oldest_unacked_message_age"`,
					"comparison": "COMPARISON_GT", "thresholdValue": 600, "duration": "300s"}}}},
		},
		kept:   "enrich-event: dead letters",
		args:   []string{"--project=" + project, "--upload-metadata=" + metadata, "--env=LOG_LEVEL=debug", "--alert-channel=" + alertChannel},
		check:  checkFunction,
		deploy: func(r Request) bool { return r.Method == http.MethodPatch && r.API == "cloudfunctions" },
	}, {
		target:   "run",
		existing: map[string]map[string]any{"monitoring:" + alertChannel: channel},
		args:     []string{"--project=" + project, "--target=run", "--alert-channel=" + alertChannel},
		check:    checkRunService,
		deploy: func(r Request) bool {
			return r.Method == http.MethodPut && strings.Contains(r.Path, "/serving.knative.dev/")
		},
	}}
	for _, tc := range tests {
		t.Run(tc.target, func(t *testing.T) {
			if testing.Short() && tc.target != "function" {
				t.Skip("-short: the function target only")
			}
			t.Parallel() // each CLI call costs about a second of CPU
			s := NewServer(project, projectNumber, discovery)
			defer s.Close()
			for key, v := range tc.existing {
				s.Put(key, v)
			}
			env := cliEnv(t, s)

			start := time.Now()
			_, stderr, err := runDeploy(t, env, tc.args...)
			if err != nil {
				t.Fatalf("first deploy.sh run: %v\nstderr:\n%s\nrequests:\n%s", err, stderr, failed(s.Requests()))
			}
			first := s.Requests()
			t.Logf("first run: %d requests in %v", len(first), time.Since(start).Round(time.Millisecond))
			checkNoRealHosts(t, first)
			checkResources(t, first, tc.existing)
			subscription := tc.check(t, s, first)
			checkBindings(t, first, subscription)
			checkAlerts(t, first, subscription, tc.existing)
			if tc.kept != "" && !strings.Contains(stderr, "alert policy '"+tc.kept+"': present (kept as it is)") {
				t.Errorf("first run's stderr does not say that the alert policy %q is kept:\n%s", tc.kept, stderr)
			}

			keys, policies := stableKeys(s.Keys()), s.Policies()
			start = time.Now()
			if _, stderr, err = runDeploy(t, env, tc.args...); err != nil {
				t.Fatalf("second deploy.sh run: %v\nstderr:\n%s\nrequests:\n%s", err, stderr, failed(s.Requests()[len(first):]))
			}
			second := s.Requests()[len(first):]
			t.Logf("second run: %d requests in %v", len(second), time.Since(start).Round(time.Millisecond))
			checkNoRealHosts(t, second)
			checkIdempotent(t, second, tc.deploy)
			for _, name := range []string{"events waiting", "dead letters", "metadata rejected"} {
				if !strings.Contains(stderr, "alert policy 'enrich-event: "+name+"': present") {
					t.Errorf("second run's stderr does not say that the alert policy %q is present:\n%s", "enrich-event: "+name, stderr)
				}
			}
			for key, v := range tc.existing {
				if got := s.Resource(key); strings.HasPrefix(key, "monitoring:") && !reflect.DeepEqual(got, clone(v)) {
					t.Errorf("%s after two runs = %v, want it as it was: %v", key, got, v)
				}
			}
			if s.TriggerRecreations != 0 {
				t.Errorf("the second run gave the trigger again: Cloud Functions recreated it %d times, dropping its subscription's backlog", s.TriggerRecreations)
			}
			if got := stableKeys(s.Keys()); !reflect.DeepEqual(got, keys) {
				t.Errorf("resources after the second run = %v, want those after the first: %v", got, keys)
			}
			if got := s.Policies(); !samePolicies(got, policies) {
				t.Errorf("IAM policies after the second run = %v, want those after the first: %v", got, policies)
			}
		})
	}
}

// TestDeployRepairsDrift: a rerun puts back what was changed by hand since
// the last run: the traffic pinned to an older revision (README's quick
// rollback) goes to the new revision, a push subscription whose retry
// and expiration policies were reset gets them back, and a dead-letter
// subscription that keeps messages 7 days (as the script made them before)
// keeps them 31.
func TestDeployRepairsDrift(t *testing.T) {
	requireCLIs(t)
	if testing.Short() {
		t.Skip("-short: two deploy.sh runs")
	}
	s := NewServer(project, projectNumber, bigQueryDiscovery(t))
	defer s.Close()
	env := cliEnv(t, s)
	args := []string{"--project=" + project, "--target=run"}
	if _, stderr, err := runDeploy(t, env, args...); err != nil {
		t.Fatalf("first deploy.sh run: %v\nstderr:\n%s", err, stderr)
	}
	const svcKey = "run:projects/proj-1/locations/us-central1/services/enrich-event"
	const subKey = "pubsub:projects/proj-1/subscriptions/enrich-event-push"
	svc := s.Resource(svcKey)
	pinned := []any{map[string]any{"revisionName": "enrich-event-00001-abc", "percent": 100}}
	svc["spec"].(map[string]any)["traffic"] = pinned
	svc["status"].(map[string]any)["traffic"] = pinned
	s.Put(svcKey, svc)
	sub := s.Resource(subKey)
	delete(sub, "retryPolicy")
	sub["expirationPolicy"] = map[string]any{"ttl": "2678400s"}
	s.Put(subKey, sub)
	const dlqKey = "pubsub:projects/proj-1/subscriptions/device-events-dead-letter-sub"
	dlq := s.Resource(dlqKey)
	dlq["messageRetentionDuration"] = "604800s"
	s.Put(dlqKey, dlq)

	first := len(s.Requests())
	if _, stderr, err := runDeploy(t, env, args...); err != nil {
		t.Fatalf("second deploy.sh run: %v\nstderr:\n%s\nrequests:\n%s", err, stderr, failed(s.Requests()[first:]))
	}
	if got := field(s.Resource(svcKey), "spec", "traffic"); got != `[{"latestRevision":true,"percent":100}]` {
		t.Errorf("service traffic after the rerun = %s, want all on the latest revision", got)
	}
	sub = s.Resource(subKey)
	if got, want := field(sub, "retryPolicy"), `{"maximumBackoff":"600s","minimumBackoff":"10s"}`; got != want {
		t.Errorf("push subscription retryPolicy after the rerun = %s, want %s", got, want)
	}
	if got := field(sub, "expirationPolicy"); got != "{}" {
		t.Errorf("push subscription expirationPolicy after the rerun = %s, want {} (never)", got)
	}
	if got := field(s.Resource(dlqKey), "messageRetentionDuration"); got != "2678400s" {
		t.Errorf("dead-letter subscription retention after the rerun = %s, want 2678400s (31 days)", got)
	}
}

// checkFunction checks the Cloud Run function and its trigger subscription,
// and returns that subscription's name.
func checkFunction(t *testing.T, s *Server, reqs []Request) string {
	create := one(t, reqs, http.MethodPost, "cloudfunctions", "/locations/us-central1/functions")
	if create.Query != "alt=json&functionId=enrich-event" {
		t.Errorf("function create query = %q, want functionId=enrich-event", create.Query)
	}
	fn := create.JSON()
	for _, f := range []struct {
		path []string
		want string
	}{
		{[]string{"buildConfig", "runtime"}, "go126"},
		{[]string{"buildConfig", "entryPoint"}, "EnrichEvent"},
		{[]string{"buildConfig", "serviceAccount"}, "projects/proj-1/serviceAccounts/" + buildEmail},
		{[]string{"serviceConfig", "serviceAccountEmail"}, runtimeEmail},
		{[]string{"serviceConfig", "environmentVariables"}, `{"BQ_TABLE":"proj-1.device_events.events","GOMEMLIMIT":"409MiB","LOG_LEVEL":"debug","METADATA_URI":"gs://proj-1-device-metadata/devices.csv"}`},
		{[]string{"serviceConfig", "availableMemory"}, "512Mi"},
		{[]string{"serviceConfig", "availableCpu"}, "1"},
		{[]string{"serviceConfig", "maxInstanceRequestConcurrency"}, "80"},
		{[]string{"serviceConfig", "maxInstanceCount"}, "10"},
		{[]string{"serviceConfig", "timeoutSeconds"}, "60"},
		{[]string{"serviceConfig", "ingressSettings"}, "ALLOW_INTERNAL_ONLY"},
		{[]string{"serviceConfig", "allTrafficOnLatestRevision"}, "true"},
		{[]string{"eventTrigger", "pubsubTopic"}, "projects/proj-1/topics/device-events"},
		{[]string{"eventTrigger", "retryPolicy"}, "RETRY_POLICY_RETRY"},
		{[]string{"eventTrigger", "serviceAccountEmail"}, invokerEmail},
	} {
		if got := field(fn, f.path...); got != f.want {
			t.Errorf("function %s = %s, want %s", strings.Join(f.path, "."), got, f.want)
		}
	}
	for _, r := range reqs {
		if r.Method == http.MethodPut && strings.HasPrefix(r.Path, "/upload-source/") {
			checkUploadedSource(t, r.Body)
		}
	}

	upload := one(t, reqs, http.MethodPost, "storage", "/upload/storage/v1/b/proj-1-device-metadata/o")
	if obj := s.Resource("storage:b/proj-1-device-metadata/o/devices.csv"); obj == nil {
		t.Errorf("%s stored no gs://proj-1-device-metadata/devices.csv", upload)
	} else if sum := md5.Sum([]byte(metadataCSV)); obj["md5Hash"] != base64.StdEncoding.EncodeToString(sum[:]) {
		t.Errorf("uploaded metadata md5 = %v, want that of %q", obj["md5Hash"], metadataCSV)
	}

	trigger := field(s.Resource("cloudfunctions:projects/proj-1/locations/us-central1/functions/enrich-event"), "eventTrigger", "trigger")
	sub := field(s.Resource("eventarc:"+trigger), "transport", "pubsub", "subscription")
	if sub == "" {
		t.Fatalf("no subscription for trigger %q", trigger)
	}
	patch := one(t, reqs, http.MethodPatch, "pubsub", "/v1/"+sub).JSON()
	if got, want := field(patch, "subscription", "deadLetterPolicy"), `{"deadLetterTopic":"`+dlqTopic+`","maxDeliveryAttempts":100}`; got != want {
		t.Errorf("trigger subscription dead-letter policy = %s, want %s", got, want)
	}
	return sub
}

// checkRunService checks the Cloud Run service, its build and its push
// subscription, and returns that subscription's name.
func checkRunService(t *testing.T, s *Server, reqs []Request) string {
	build := one(t, reqs, http.MethodPost, "run", "/v2/projects/proj-1/locations/us-central1/builds:submit").JSON()
	for path, want := range map[string]string{
		"buildpackBuild.functionTarget": "EnrichEvent",
		"buildpackBuild.baseImage":      "go126",
		"serviceAccount":                "projects/proj-1/serviceAccounts/" + buildEmail,
	} {
		if got := field(build, strings.Split(path, ".")...); got != want {
			t.Errorf("builds:submit %s = %s, want %s", path, got, want)
		}
	}
	svc := one(t, reqs, http.MethodPost, "run", "/namespaces/proj-1/services").JSON()
	spec := []string{"spec", "template", "spec"}
	for _, f := range []struct {
		path []string
		want string
	}{
		{[]string{"metadata", "name"}, "enrich-event"},
		{[]string{"metadata", "annotations", "run.googleapis.com/ingress"}, "internal"},
		{[]string{"spec", "template", "metadata", "annotations", "autoscaling.knative.dev/maxScale"}, "10"},
		{append(spec, "serviceAccountName"), runtimeEmail},
		{append(spec, "containerConcurrency"), "80"},
		{append(spec, "timeoutSeconds"), "60"},
	} {
		if got := field(svc, f.path...); got != f.want {
			t.Errorf("service %s = %s, want %s", strings.Join(f.path, "."), got, f.want)
		}
	}
	containers, _ := jsonPath(svc, spec...).(map[string]any)["containers"].([]any)
	if len(containers) != 1 {
		t.Fatalf("service has %d containers, want 1", len(containers))
	}
	c := containers[0].(map[string]any)
	if got, want := field(c, "env"), `[{"name":"METADATA_URI","value":"gs://proj-1-device-metadata/devices.csv"},{"name":"BQ_TABLE","value":"proj-1.device_events.events"},{"name":"GOMEMLIMIT","value":"409MiB"}]`; got != want {
		t.Errorf("service env = %s, want %s", got, want)
	}
	if got, want := field(c, "resources", "limits"), `{"cpu":"1","memory":"512Mi"}`; got != want {
		t.Errorf("service limits = %s, want %s", got, want)
	}

	url := field(s.Resource("run:projects/proj-1/locations/us-central1/services/enrich-event"), "status", "url")
	// The subscription is made before the service, so that the events
	// published during the build are kept, and then pointed at it.
	created, deployed := -1, -1
	for i, r := range reqs {
		switch {
		case created < 0 && r.Method == http.MethodPut && r.API == "pubsub" && r.Path == "/v1/projects/proj-1/subscriptions/enrich-event-push":
			created = i
		case deployed < 0 && r.Method == http.MethodPost && r.API == "run" && strings.HasSuffix(r.Path, "/namespaces/proj-1/services"):
			deployed = i
		}
	}
	if created < 0 || created > deployed {
		t.Errorf("push subscription created at request %d, the service at %d: want the subscription first", created, deployed)
	}
	push := s.Resource("pubsub:projects/proj-1/subscriptions/enrich-event-push")
	for path, want := range map[string]string{
		"topic":                   "projects/proj-1/topics/device-events",
		"pushConfig.pushEndpoint": url + "/projects/proj-1/topics/device-events",
		"pushConfig.oidcToken":    `{"audience":"` + url + `","serviceAccountEmail":"` + invokerEmail + `"}`,
		"pushConfig.noWrapper":    "",
		"ackDeadlineSeconds":      "90",
		"deadLetterPolicy":        `{"deadLetterTopic":"` + dlqTopic + `","maxDeliveryAttempts":100}`,
		"retryPolicy":             `{"maximumBackoff":"600s","minimumBackoff":"10s"}`,
		"expirationPolicy":        "{}",
	} {
		if got := field(push, strings.Split(path, ".")...); got != want {
			t.Errorf("push subscription %s = %s, want %s", path, got, want)
		}
	}
	return "projects/proj-1/subscriptions/enrich-event-push"
}

// TestDeployOnANewProject: on a new project, IAM does not know a service
// account for a while after it is created, and a grant naming it fails
// with "Service account ... does not exist"; and Eventarc's service agent,
// created with the first trigger, cannot create it until its permissions
// have propagated. deploy.sh tries both again, with backoff, and the run
// completes with every binding and the trigger; past the last attempt it
// stops and says why.
func TestDeployOnANewProject(t *testing.T) {
	requireCLIs(t)
	if testing.Short() {
		t.Skip("-short: two deploy.sh runs")
	}
	discovery := bigQueryDiscovery(t)
	for _, tc := range []struct {
		name    string
		lag     int
		succeed bool
	}{
		{"accounts and Eventarc ready after two attempts", 2, true},
		{"accounts never seen", 100, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := NewServer(project, projectNumber, discovery)
			defer s.Close()
			s.AccountLag, s.EventarcLag, s.BuildLag = tc.lag, tc.lag, 1
			env := append(cliEnv(t, s), "DEPLOY_RETRY_DELAY=0")
			_, stderr, err := runDeploy(t, env, "--project="+project)
			reqs := s.Requests()
			refused := map[string]int{} // setIamPolicy calls refused, by account
			var granted []Request
			for _, r := range reqs {
				if r.Status < 400 {
					granted = append(granted, r)
					continue
				}
				for _, email := range []string{runtimeEmail, invokerEmail, buildEmail} {
					if strings.Contains(string(r.Body), "serviceAccount:"+email) {
						refused[email]++
					}
				}
			}
			if !tc.succeed {
				if err == nil || !strings.Contains(stderr, "does not exist") {
					t.Fatalf("deploy.sh = %v, stderr:\n%s\nwant a failure that says the account does not exist", err, stderr)
				}
				if refused[buildEmail] != 8 { // the first grant: to the build account
					t.Errorf("grants to the build account refused %d times, want 8 (every attempt)", refused[buildEmail])
				}
				return
			}
			if err != nil {
				t.Fatalf("deploy.sh: %v\nstderr:\n%s\nrequests:\n%s", err, stderr, failed(reqs))
			}
			for _, email := range []string{runtimeEmail, invokerEmail, buildEmail} {
				if refused[email] != tc.lag {
					t.Errorf("grants naming %s refused %d times, want %d (then granted)", email, refused[email], tc.lag)
				}
			}
			// Without --alert-channel: no alert policy, no Monitoring API.
			for _, r := range reqs {
				if r.API == "monitoring" || r.API == "serviceusage" && strings.Contains(string(r.Body), "monitoring.googleapis.com") {
					t.Errorf("a run without --alert-channel sent %s %s", r, r.Body)
				}
			}
			for _, why := range []string{"IAM does not know the account yet", "permissions are still propagating"} {
				if !strings.Contains(stderr, why) {
					t.Errorf("stderr does not say %q:\n%s", why, stderr)
				}
			}
			deploys := 0
			for _, r := range reqs {
				if r.API == "cloudfunctions" && (r.Method == http.MethodPost && strings.HasSuffix(r.Path, "/functions") || r.Method == http.MethodPatch) {
					deploys++
				}
			}
			if deploys != 1+tc.lag+1 {
				t.Errorf("function deployed %d times, want %d (its build failed once, Eventarc refused it %d times, then created)", deploys, 1+tc.lag+1, tc.lag)
			}
			fn := s.Resource("cloudfunctions:projects/proj-1/locations/us-central1/functions/enrich-event")
			if fn["state"] != "ACTIVE" {
				t.Errorf("function state %v, want ACTIVE", fn["state"])
			}
			trigger := field(fn, "eventTrigger", "trigger")
			checkBindings(t, granted, field(s.Resource("eventarc:"+trigger), "transport", "pubsub", "subscription"))
		})
	}
}
