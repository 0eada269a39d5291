package deploytest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDryRun checks that --dry-run prints every command for an empty
// project and runs none: gcloud, bq and gsutil are shadowed by stubs that
// record any call.
func TestDryRun(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash not found")
	}
	root := repoRoot(t)
	rows := filepath.Join(root, "sink", "schema", "rows.json")
	errs := filepath.Join(root, "sink", "schema", "error_records.json")
	sample := filepath.Join(root, "testdata", "devices.csv")
	ndjson := filepath.Join(root, "testdata", "devices.ndjson")
	const (
		runtimeSA = "serviceAccount:enrich-event-runtime@proj-1.iam.gserviceaccount.com"
		invokerSA = "serviceAccount:enrich-event-invoker@proj-1.iam.gserviceaccount.com"
		agent     = "serviceAccount:service-PROJECT_NUMBER@gcp-sa-pubsub.iam.gserviceaccount.com"
	)
	tests := []struct {
		name     string
		env      []string
		args     []string
		want     []string // command lines containing these, in this order
		comments []string // comment lines containing these (the alert policies' files)
		absent   []string
		stderr   string // in the warnings, if set
	}{{
		name: "function",
		args: []string{"--project=proj-1", "--dry-run", "--env=LOG_LEVEL=debug"},
		want: []string{
			"gcloud services enable cloudfunctions.googleapis.com run.googleapis.com",
			"gcloud iam service-accounts create enrich-event-runtime --project=proj-1",
			"gcloud iam service-accounts create enrich-event-invoker --project=proj-1",
			"gcloud iam service-accounts add-iam-policy-binding enrich-event-invoker@proj-1.iam.gserviceaccount.com --project=proj-1 --member=" + agent + " --role=roles/iam.serviceAccountTokenCreator",
			"gcloud iam service-accounts create enrich-event-build --project=proj-1",
			"gcloud projects add-iam-policy-binding proj-1 --member=serviceAccount:enrich-event-build@proj-1.iam.gserviceaccount.com --role=roles/cloudbuild.builds.builder",
			"gcloud storage buckets create gs://proj-1-device-metadata --project=proj-1 --location=us-central1 --uniform-bucket-level-access --public-access-prevention --lifecycle-file=",
			"gcloud storage buckets update gs://proj-1-device-metadata --project=proj-1 --versioning",
			"gcloud storage buckets add-iam-policy-binding gs://proj-1-device-metadata --project=proj-1 --member=" + runtimeSA + " --role=roles/storage.objectViewer",
			"gcloud pubsub topics create device-events --project=proj-1",
			"gcloud pubsub topics create device-events-dead-letter --project=proj-1",
			"gcloud pubsub subscriptions create device-events-dead-letter-sub --project=proj-1 --topic=device-events-dead-letter --message-retention-duration=31d",
			"gcloud pubsub topics add-iam-policy-binding device-events-dead-letter --project=proj-1 --member=" + agent + " --role=roles/pubsub.publisher",
			"bq --format=none mk --dataset --location=us-central1",
			"bq --format=none mk --table --schema=" + rows + " --time_partitioning_type=DAY --time_partitioning_field=event_time --clustering_fields=device_id",
			"bq --format=none mk --table --schema=" + errs,
			"PARTITION BY message_id",
			"bq --format=none add-iam-policy-binding --member=" + runtimeSA + " --role=roles/bigquery.dataEditor proj-1:device_events.events",
			"bq --format=none add-iam-policy-binding --member=" + runtimeSA + " --role=roles/bigquery.dataEditor proj-1:device_events.events_error_records",
			"gcloud functions deploy enrich-event --gen2 --runtime=go126 --entry-point=EnrichEvent --trigger-topic=device-events --retry --trigger-service-account=enrich-event-invoker@proj-1.iam.gserviceaccount.com",
			"--service-account=enrich-event-runtime@proj-1.iam.gserviceaccount.com --set-env-vars=METADATA_URI=gs://proj-1-device-metadata/devices.csv,BQ_TABLE=proj-1.device_events.events,GOMEMLIMIT=409MiB,LOG_LEVEL=debug --memory=512Mi --cpu=1 --concurrency=80 --max-instances=10 --min-instances=0",
			"gcloud run services add-iam-policy-binding enrich-event --project=proj-1 --region=us-central1 --member=" + invokerSA + " --role=roles/run.invoker",
			"gcloud pubsub subscriptions update TRIGGER_SUBSCRIPTION --project=proj-1 --dead-letter-topic=device-events-dead-letter --max-delivery-attempts=100",
			"gcloud pubsub subscriptions add-iam-policy-binding TRIGGER_SUBSCRIPTION --project=proj-1 --member=" + agent + " --role=roles/pubsub.subscriber",
		},
		absent: []string{"gcloud run deploy", "gcloud storage cp", "monitoring"},
	}, {
		name: "function with alerts",
		args: []string{"--project=proj-1", "--dry-run", "--alert-channel=projects/proj-1/notificationChannels/42"},
		want: []string{
			"gcloud services enable cloudfunctions.googleapis.com", "iam.googleapis.com monitoring.googleapis.com --project=proj-1",
			"gcloud functions deploy enrich-event",
			"gcloud pubsub subscriptions add-iam-policy-binding TRIGGER_SUBSCRIPTION",
			"gcloud alpha monitoring policies create --project=proj-1 --policy-from-file=", "/alert-events.json --format=none",
			"gcloud alpha monitoring policies create --project=proj-1 --policy-from-file=", "/alert-dead.json --format=none",
			"gcloud alpha monitoring policies create --project=proj-1 --policy-from-file=", "/alert-metadata.json --format=none",
		},
		comments: []string{
			`# read: gcloud alpha monitoring policies list --project=proj-1 '--filter=displayName=("enrich-event: events waiting" "enrich-event: dead letters" "enrich-event: metadata rejected")'`,
			`"displayName": "enrich-event: events waiting"`,
			`resource.labels.subscription_id=\"TRIGGER_SUBSCRIPTION\"`,
			`"displayName": "enrich-event: dead letters"`,
			`resource.labels.subscription_id=\"device-events-dead-letter-sub\"`,
			`"displayName": "enrich-event: metadata rejected"`,
			`resource.labels.service_name=\"enrich-event\" AND (jsonPayload.message=~\"^metadata rejected\"`,
			`"notificationChannels": ["projects/proj-1/notificationChannels/42"]`,
		},
	}, {
		name: "run",
		args: []string{"--project=proj-1", "--target=run", "--timeout=300", "--dry-run", "--upload-metadata=" + sample},
		want: []string{
			"gcloud storage cp " + sample + " gs://proj-1-device-metadata/devices.csv",
			// before the deploy, so that what is published meanwhile is kept
			"gcloud pubsub subscriptions create enrich-event-push --project=proj-1 --topic=device-events --ack-deadline=330 --dead-letter-topic=device-events-dead-letter --max-delivery-attempts=100",
			"gcloud run deploy enrich-event --function=EnrichEvent --base-image=go126 --no-allow-unauthenticated --ingress=internal --timeout=300s",
			"gcloud run services add-iam-policy-binding enrich-event --project=proj-1 --region=us-central1 --member=" + invokerSA + " --role=roles/run.invoker",
			"gcloud pubsub subscriptions update enrich-event-push --project=proj-1 --push-endpoint=https://SERVICE_URL/projects/proj-1/topics/device-events --push-auth-service-account=enrich-event-invoker@proj-1.iam.gserviceaccount.com --push-auth-token-audience=https://SERVICE_URL --ack-deadline=330 --dead-letter-topic=device-events-dead-letter --max-delivery-attempts=100",
			"gcloud pubsub subscriptions add-iam-policy-binding enrich-event-push --project=proj-1 --member=" + agent + " --role=roles/pubsub.subscriber",
		},
		absent: []string{"gcloud functions deploy", "TRIGGER_SUBSCRIPTION", "monitoring"},
	}, {
		name: "run with alerts from the environment",
		env:  []string{"ALERT_CHANNEL=projects/proj-1/notificationChannels/7"},
		args: []string{"--project=proj-1", "--target=run", "--dry-run"},
		want: []string{
			"gcloud pubsub subscriptions update enrich-event-push",
			"gcloud alpha monitoring policies create --project=proj-1 --policy-from-file=", "/alert-events.json",
		},
		comments: []string{
			`resource.labels.subscription_id=\"enrich-event-push\"`,
			`"notificationChannels": ["projects/proj-1/notificationChannels/7"]`,
		},
		absent: []string{"TRIGGER_SUBSCRIPTION"},
	}, {
		name: "environment fallbacks",
		env:  []string{"PROJECT_ID=env-proj", "REGION=europe-west1", "SERVICE_NAME=enricher", "TOPIC=events", "MAX_INSTANCES=3"},
		args: []string{"--dry-run"},
		want: []string{
			"gcloud pubsub topics create events --project=env-proj",
			"gcloud pubsub topics create events-dead-letter --project=env-proj",
			"gcloud functions deploy enricher --gen2",
			"--region=europe-west1",
			"--max-instances=3",
		},
	}, {
		name: "env value with a comma",
		args: []string{"--project=proj-1", "--dry-run", "--env=DEVICE_ID_FIELD=a,b"},
		want: []string{"'--set-env-vars=^|^METADATA_URI=gs://proj-1-device-metadata/devices.csv|BQ_TABLE=proj-1.device_events.events|GOMEMLIMIT=409MiB|DEVICE_ID_FIELD=a,b'"},
	}, {
		name:   "env replaces a default",
		args:   []string{"--project=proj-1", "--dry-run", "--env=METADATA_TTL=5m", "--env=METADATA_URI=gs://other/devices.json"},
		want:   []string{"--set-env-vars=BQ_TABLE=proj-1.device_events.events,GOMEMLIMIT=409MiB,METADATA_TTL=5m,METADATA_URI=gs://other/devices.json "},
		stderr: "warning: --env METADATA_URI: the function may read only what --bucket and --object name",
	}, {
		name:   "env names a table of its own",
		args:   []string{"--project=proj-1", "--dry-run", "--env=BQ_TABLE=other.ds.events"},
		want:   []string{"--set-env-vars=METADATA_URI=gs://proj-1-device-metadata/devices.csv,GOMEMLIMIT=409MiB,BQ_TABLE=other.ds.events "},
		stderr: "warning: --env BQ_TABLE: the script creates and grants only the tables --dataset, --table and --error-table name",
	}, {
		name: "memory limit follows --memory",
		args: []string{"--project=proj-1", "--dry-run", "--memory=1Gi"},
		want: []string{"BQ_TABLE=proj-1.device_events.events,GOMEMLIMIT=819MiB --memory=1Gi "},
	}, {
		name: "memory limit given",
		args: []string{"--project=proj-1", "--dry-run", "--memory=2G", "--env=GOMEMLIMIT=1800MiB"},
		want: []string{"BQ_TABLE=proj-1.device_events.events,GOMEMLIMIT=1800MiB --memory=2G "},
	}, {
		name: "NDJSON uploaded under a .json name", // the function tells them apart by content
		args: []string{"--project=proj-1", "--dry-run", "--upload-metadata=" + ndjson, "--object=devices.json"},
		want: []string{"gcloud storage cp " + ndjson + " gs://proj-1-device-metadata/devices.json"},
	}, {
		name: "error table given",
		args: []string{"--project=proj-1", "--dry-run", "--error-table=poison"},
		want: []string{
			"proj-1:device_events.poison",
			"BQ_TABLE=proj-1.device_events.events,GOMEMLIMIT=409MiB,BQ_ERROR_TABLE=poison",
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env, calls := stubbedEnv(t)
			stdout, stderr, err := runDeploy(t, append(env, tc.env...), tc.args...)
			if err != nil {
				t.Fatalf("deploy.sh %s: %v\nstderr:\n%s", strings.Join(tc.args, " "), err, stderr)
			}
			checkNoCalls(t, calls)
			if !strings.Contains(stderr, tc.stderr) {
				t.Errorf("deploy.sh %s: stderr %q, want it to contain %q", strings.Join(tc.args, " "), stderr, tc.stderr)
			}
			var commands, comments []string
			for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
				if strings.HasPrefix(line, "#") {
					comments = append(comments, line)
					continue
				}
				if !strings.HasPrefix(line, "gcloud ") && !strings.HasPrefix(line, "bq ") {
					t.Errorf("dry-run line is neither a comment nor a gcloud/bq command: %q", line)
				}
				commands = append(commands, line)
			}
			wantInOrder(t, "command", commands, tc.want, stdout)
			wantInOrder(t, "comment", comments, tc.comments, stdout)
			for _, absent := range tc.absent {
				if strings.Contains(stdout, absent) {
					t.Errorf("dry-run output contains %q; output:\n%s", absent, stdout)
				}
			}
		})
	}
}

// TestUsageErrors checks that bad settings stop deploy.sh before it runs
// anything, with a message naming the problem.
func TestUsageErrors(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash not found")
	}
	root := repoRoot(t)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--project=p", "--target=lambda"}, "--target must be function or run"},
		{[]string{"--project=example.com:p"}, "is domain-scoped: this script supports plain project ids only"},
		{[]string{"--project=p", "--max-delivery-attempts=3"}, "--max-delivery-attempts must be 5..100"},
		{[]string{"--project=p", "--timeout=900"}, "--timeout must be 1..540"},
		{[]string{"--project=p", "--concurrency=many"}, "CONCURRENCY must be a whole number"},
		{[]string{"--project=p", "--min-instances=5", "--max-instances=2"}, "--min-instances must not exceed --max-instances"},
		{[]string{"--project=p", "--cpu=0.5"}, "--concurrency above 1 needs --cpu of at least 1"},
		{[]string{"--project=p", "--error-table=events"}, "--error-table must differ"},
		{[]string{"--project=p", "--ingress=public"}, "--ingress must be internal or all"},
		{[]string{"--project=p", "--name=a-name-far-too-long-for-an-account"}, "service account id"},
		{[]string{"--project=p", "--name=EnrichEvent"}, "--name must be lowercase letters, digits and dashes"},
		{[]string{"--dry-run"}, "no project: pass --project, or set PROJECT_ID or GOOGLE_CLOUD_PROJECT (a dry run does not ask gcloud"},
		{[]string{"--project=p", "--upload-metadata=/nonexistent/devices.csv"}, "no such file"},
		{[]string{"--project=p", "--upload-metadata=" + filepath.Join(root, "testdata/devices.json")}, "is json but --object devices.csv is read as csv"},
		{[]string{"--project=p", "--upload-metadata=" + filepath.Join(root, "testdata/devices.json"), "--object=meta/d.ndjson.gz"}, "pass --object=meta/devices.json"},
		{[]string{"--project=p", "--env=lower=x"}, "--env wants KEY=VALUE"},
		{[]string{"--project=p", "--memory=lots"}, "--memory must be a size such as 512Mi"},
		{[]string{"--project=p", "--memory=0"}, "--memory must be a size such as 512Mi"},
		{[]string{"--project=p", "--frobnicate"}, "unknown flag: --frobnicate"},
		{[]string{"--project=p", "stray"}, "unexpected argument: stray"},
		{[]string{"--project"}, "--project needs a value"},
		{[]string{"--project=p", "--alert-channel=42"}, "--alert-channel must be a notification channel's full name, projects/PROJECT/notificationChannels/ID, not '42'"},
		{[]string{"--project=p", "--alert-channel=projects/p/notificationChannels/"}, "--alert-channel must be a notification channel's full name"},
		{[]string{"--project=p", "--alert-channel=projects/p/alertPolicies/42"}, "--alert-channel must be a notification channel's full name"},
		{[]string{"--project=p", "--alert-channel=projects/p/notificationChannels/42/x"}, "--alert-channel must be a notification channel's full name"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			env, calls := stubbedEnv(t)
			_, stderr, err := runDeploy(t, env, tc.args...)
			if err == nil {
				t.Fatalf("deploy.sh %s succeeded, want an error containing %q", strings.Join(tc.args, " "), tc.want)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("deploy.sh %s: stderr = %q, want it to contain %q", strings.Join(tc.args, " "), stderr, tc.want)
			}
			checkNoCalls(t, calls)
		})
	}

	t.Run("--help", func(t *testing.T) {
		env, calls := stubbedEnv(t)
		stdout, _, err := runDeploy(t, env, "--help")
		if err != nil {
			t.Fatalf("deploy.sh --help: %v", err)
		}
		for _, want := range []string{"Usage:", "--project=ID", "--target=function|run", "--upload-metadata=FILE", "--alert-channel=CHANNEL", "--dry-run"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("deploy.sh --help output lacks %q:\n%s", want, stdout)
			}
		}
		checkNoCalls(t, calls)
	})
}

// TestAlertsNeedGcloudAlpha: with --alert-channel, and gcloud alpha
// missing (the stub fails every command), deploy.sh stops before it
// changes anything and says how to install it. A dry run does not look.
func TestAlertsNeedGcloudAlpha(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash not found")
	}
	env, calls := stubbedEnv(t)
	_, stderr, err := runDeploy(t, env, "--project=p", "--alert-channel=projects/p/notificationChannels/42")
	if err == nil || !strings.Contains(stderr, "install them with 'gcloud components install alpha'") {
		t.Errorf("deploy.sh without gcloud alpha = %v, stderr %q; want a failure naming gcloud components install alpha", err, stderr)
	}
	b, _ := os.ReadFile(calls)
	if lines := strings.Split(strings.TrimSpace(string(b)), "\n"); len(lines) != 1 || !strings.HasSuffix(lines[0], "gcloud alpha monitoring policies --help") {
		t.Errorf("deploy.sh ran %q, want only gcloud alpha monitoring policies --help", b)
	}
}

// stubbedEnv returns an environment whose gcloud, bq and gsutil only record
// that they were called (into the returned file) and fail.
func stubbedEnv(t *testing.T) (env []string, calls string) {
	t.Helper()
	dir := t.TempDir()
	calls = filepath.Join(dir, "calls")
	for _, tool := range []string{"gcloud", "bq", "gsutil"} {
		script := "#!/bin/sh\nprintf '%s\\n' \"$0 $*\" >>'" + calls + "'\nexit 97\n"
		if err := os.WriteFile(filepath.Join(dir, tool), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return []string{"PATH=" + dir + string(os.PathListSeparator) + os.Getenv("PATH"), "HOME=" + dir}, calls
}

func checkNoCalls(t *testing.T, calls string) {
	t.Helper()
	if b, err := os.ReadFile(calls); err == nil {
		t.Errorf("deploy.sh ran cloud CLIs:\n%s", b)
	}
}

// wantInOrder fails t unless each of wants is in one of lines (the
// dry-run's commands or comments, what names them), each in the same line
// as the one before it or a later one.
func wantInOrder(t *testing.T, what string, lines, wants []string, stdout string) {
	t.Helper()
	next := 0
	for _, want := range wants {
		found := false
		for ; next < len(lines); next++ {
			if found = strings.Contains(lines[next], want); found {
				break
			}
		}
		if !found {
			t.Fatalf("dry-run output has no %s containing %q (after the ones before it); output:\n%s", what, want, stdout)
		}
	}
}
