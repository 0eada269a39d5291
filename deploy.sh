#!/usr/bin/env bash
#
# deploy.sh: take a Google Cloud project to a running EnrichEvent pipeline.
#
# Enables the APIs, creates least-privilege service accounts, the Pub/Sub topic
# and its dead-letter topic, the metadata bucket, the BigQuery dataset, tables
# and dedup view, optionally uploads the device metadata file, then deploys the
# function (Cloud Run functions, Eventarc Pub/Sub trigger) or a Cloud Run
# service fed by an authenticated push subscription. Every step looks before it
# creates, so running it again changes nothing that is already right.
#
# Usage:
#   ./deploy.sh --project=my-project [flags]
#   ./deploy.sh --project=my-project --upload-metadata=devices.csv
#   ./deploy.sh --project=my-project --target=run --dry-run
#
# Flags (environment fallback in brackets, then the default):
#   --project=ID               [PROJECT_ID, GOOGLE_CLOUD_PROJECT] gcloud's default
#   --region=REGION            [REGION] us-central1
#   --name=NAME                [SERVICE_NAME] enrich-event: function/service name
#   --target=function|run      [TARGET] function
#   --topic=TOPIC              [TOPIC] device-events
#   --dead-letter-topic=TOPIC  [DEAD_LETTER_TOPIC] TOPIC-dead-letter
#   --subscription=SUB         [SUBSCRIPTION] NAME-push (push subscription, --target=run)
#   --bucket=BUCKET            [BUCKET] PROJECT-device-metadata
#   --object=OBJECT            [OBJECT] devices.csv
#   --upload-metadata=FILE     [UPLOAD_METADATA] upload FILE to gs://BUCKET/OBJECT
#   --dataset=DATASET          [DATASET] device_events
#   --table=TABLE              [TABLE] events (also TABLE_error_records, TABLE_dedup)
#   --error-table=TABLE        [ERROR_TABLE] TABLE_error_records
#   --bq-location=LOCATION     [BQ_LOCATION] REGION
#   --runtime-sa=ACCOUNT_ID    [RUNTIME_SA] NAME-runtime
#   --invoker-sa=ACCOUNT_ID    [INVOKER_SA] NAME-invoker
#   --build-sa=ID|EMAIL        [BUILD_SA] NAME-build; an EMAIL is used as it is,
#                              without creating it or granting it anything
#   --memory=SIZE              [MEMORY] 512Mi; the function gets GOMEMLIMIT=80% of it
#   --cpu=N                    [CPU] 1
#   --concurrency=N            [CONCURRENCY] 80 (requests per instance)
#   --max-instances=N          [MAX_INSTANCES] 10
#   --min-instances=N          [MIN_INSTANCES] 0
#   --timeout=SECONDS          [TIMEOUT] 60 (at most 540)
#   --max-delivery-attempts=N  [MAX_DELIVERY_ATTEMPTS] 100 (5..100)
#   --ingress=internal|all     [INGRESS] internal
#   --alert-channel=CHANNEL    [ALERT_CHANNEL] none; a notification channel,
#                              projects/PROJECT/notificationChannels/ID: make
#                              the three alert policies of the README's
#                              "Operating" section, each notifying it
#   --env=KEY=VALUE            extra function environment variable (repeatable),
#                              e.g. --env=METADATA_TTL=30m --env=LOG_LEVEL=debug
#   --source=DIR               [SOURCE] the directory holding this script
#   --dry-run                  [DRY_RUN=1] print every command, run none
#   -h, --help                 print this help
#
# Requires bash, gcloud and bq (Google Cloud SDK), logged in as someone who
# may enable APIs, create service accounts and grant roles in the project
# (roles/owner is simplest). See the README's "Deploy" section.

set -euo pipefail

usage() {
	sed -n '3,/^$/{s/^# \{0,1\}//;p}' "$0"
}

die() {
	printf 'deploy.sh: %s\n' "$*" >&2
	exit 1
}

note() {
	printf '==> %s\n' "$*" >&2
}

# quote prints its arguments as one shell command line that can be pasted back.
quote() {
	local out="" arg
	for arg in "$@"; do
		if [[ $arg =~ ^[A-Za-z0-9_./:=@,+%^-]+$ ]]; then
			out+="$arg "
		else
			out+="'${arg//\'/\'\\\'\'}' "
		fi
	done
	printf '%s\n' "${out% }"
}

dry() {
	[[ $DRY_RUN == 1 ]]
}

# run runs a command that changes something; with --dry-run it only prints it.
run() {
	if dry; then
		quote "$@"
		return 0
	fi
	printf '+ %s\n' "$(quote "$@")" >&2
	"$@"
}

# lookup runs a read-only command (describe, list, get-iam-policy) and prints
# its output. Status 0: found; 3: the API answers that the resource does not
# exist; any other failure stops the script. With --dry-run it prints the
# command as a comment and answers 3, as for an empty project. Inside $(...):
#   if out=$(lookup ...); then ...; else (($? == 3)) || exit; ...; fi
lookup() {
	if dry; then
		printf '# check: %s\n' "$(quote "$@")" >&3
		return 3
	fi
	local out
	if out=$("$@" 2>"$ERRORS"); then
		[[ -z $out ]] || printf '%s\n' "$out"
		return 0
	fi
	out+=$(<"$ERRORS") # bq reports errors on stdout, gcloud on stderr
	if grep -qiE 'not[ _]?found|404|cannot find|does not exist' <<<"$out"; then
		return 3
	fi
	die "$(quote "$@") failed: $out"
}

# exists CMD...: whether a describe command finds its resource (see lookup).
exists() {
	lookup "$@" >/dev/null
}

# read_value runs a read-only command and prints its output; with --dry-run it
# prints the command as a comment and outputs the placeholder $1 instead.
read_value() {
	local placeholder=$1
	shift
	if dry; then
		printf '# read: %s\n' "$(quote "$@")" >&3
		printf '%s\n' "$placeholder"
		return 0
	fi
	"$@"
}

# missing LIST ITEM: prints 1 if ITEM is not a line of LIST, else 0.
missing() {
	if grep -qxF "$2" <<<"$1"; then echo 0; else echo 1; fi
}

# retry_while PATTERN WHY ATTEMPTS DELAY CMD...: runs a command that changes
# something (as run does), showing its output. Some failures only mean that
# something this run created is not yet visible everywhere: while CMD fails
# with output matching PATTERN, it is tried again after DELAY seconds,
# doubling up to 60 s, ATTEMPTS times in all, saying WHY. Any other failure,
# or the last attempt's, stops the script.
retry_while() {
	local pattern=$1 why=$2 attempts=$3 delay=$4 attempt
	shift 4
	if dry; then
		quote "$@"
		return 0
	fi
	printf '+ %s\n' "$(quote "$@")" >&2
	for ((attempt = 1; ; attempt++)); do
		if "$@" 2>&1 | tee "$ERRORS" >&2; then
			return 0
		fi
		if ((attempt == attempts)) || ! grep -qiE "$pattern" "$ERRORS"; then
			die "$(quote "$@") failed (attempt $attempt of $attempts): see its output above"
		fi
		note "$why; trying again in ${delay}s (attempt $attempt of $attempts failed)"
		sleep "$delay"
		delay=$((delay * 2 > 60 ? 60 : delay * 2))
	done
}

# RETRY_DELAY is the first delay of the retries below, in seconds
# (DEPLOY_RETRY_DELAY; the tests set 0).
RETRY_DELAY=${DEPLOY_RETRY_DELAY:-2}

# add_binding CMD...: runs an add-iam-policy-binding command. IAM is
# eventually consistent: a service account this run just created, or the
# service agent of an API it just enabled, may be unknown to policies for a
# minute or more, and the command fails with "Service account ... does not
# exist". That failure is tried again after 2, 4, 8, 16, 32, 60 and 60 s
# (about 3 minutes in all).
add_binding() {
	retry_while 'service account [^ ]+ does not exist' \
		"IAM does not know the account yet (new accounts take a minute or two to be seen everywhere)" \
		8 "$RETRY_DELAY" "$@"
}

# grant NEW ROLE MEMBER "GCLOUD GROUP" RESOURCE_ARGS...: adds MEMBER/ROLE to
# the IAM policy of a resource gcloud manages (project, bucket, topic,
# subscription, Cloud Run service) unless the policy has it already. NEW=1
# says this run just created the resource or the member, so the binding
# cannot be there and the policy is not read first. Example:
#   grant 0 roles/pubsub.publisher "$member" "gcloud pubsub topics" TOPIC --project=P
grant() {
	local new=$1 role=$2 member=$3 group=$4
	shift 4
	local -a cmd extra=()
	read -r -a cmd <<<"$group"
	[[ $group != "gcloud projects" ]] || extra=(--condition=None)
	if [[ $new != 1 ]]; then
		local bindings
		if bindings=$(lookup "${cmd[@]}" get-iam-policy "$@" --flatten='bindings[].members' \
			--format='csv[no-heading](bindings.role,bindings.members)'); then
			if grep -qxF "$role,$member" <<<"$bindings"; then
				note "$role for $member on $1: present"
				return 0
			fi
		else
			(($? == 3)) || exit
		fi
	fi
	add_binding "${cmd[@]}" add-iam-policy-binding "$@" --member="$member" --role="$role" \
		${extra[@]+"${extra[@]}"} --format=none --quiet
}

# grant_table NEW ROLE MEMBER TABLE: grant for a BigQuery table of the
# dataset (bq prints the policy as compact JSON: one {...} per binding).
grant_table() {
	local new=$1 role=$2 member=$3 ref="$PROJECT:$DATASET.$4"
	if [[ $new != 1 ]]; then
		local policy
		if policy=$(lookup bq --format=json get-iam-policy "$ref"); then
			if grep -o '{[^{}]*}' <<<"$policy" | grep -F "\"role\":\"$role\"" | grep -qF "\"$member\""; then
				note "$role for $member on $ref: present"
				return 0
			fi
		else
			(($? == 3)) || exit
		fi
	fi
	add_binding bq --format=none add-iam-policy-binding --member="$member" --role="$role" "$ref"
}

# metadata_format NAME: csv, json or ndjson, as the function reads an
# object of that name (by its extension, before any .gz), or nothing.
metadata_format() {
	local name=${1,,}
	name=${name%.gz}
	name=${name%.gzip}
	case $name in
	*.csv) echo csv ;;
	*.json) echo json ;;
	*.ndjson | *.jsonl) echo ndjson ;;
	esac
}

# md5_base64 FILE: the MD5 of FILE in base64, as Cloud Storage reports it
# (nothing if neither md5sum nor openssl is there: then FILE is uploaded).
md5_base64() {
	if command -v md5sum >/dev/null; then
		local hex esc="" i
		hex=$(md5sum <"$1") || exit
		for ((i = 0; i < 32; i += 2)); do
			esc+="\\x${hex:i:2}"
		done
		# shellcheck disable=SC2059 # the format is made of \xHH escapes
		printf "$esc" | base64
	elif command -v openssl >/dev/null; then
		openssl dgst -md5 -binary <"$1" | base64
	fi
}

# go_memory_limit SIZE: the GOMEMLIMIT for an instance of SIZE (--memory:
# 512Mi, 1Gi, 2G, ...), 80 % of it in MiB, or nothing if SIZE is not a size.
# Go does not read the instance's limit itself; given one, the garbage
# collector works harder as the heap nears it instead of letting the heap
# grow to twice what is live (GOGC=100) while a refresh holds two device
# tables, which can be more than the instance has. The other 20 % is for
# what is not heap: stacks, the runtime, the binary, network buffers.
go_memory_limit() {
	[[ $1 =~ ^([0-9]+)(Ki|Mi|Gi|k|K|M|G)?$ ]] || return 0
	local n=${BASH_REMATCH[1]} bytes
	case ${BASH_REMATCH[2]} in
	Ki) bytes=$((n << 10)) ;;
	Mi) bytes=$((n << 20)) ;;
	Gi) bytes=$((n << 30)) ;;
	k | K) bytes=$((n * 1000)) ;;
	M) bytes=$((n * 1000000)) ;;
	G) bytes=$((n * 1000000000)) ;;
	*) bytes=$n ;;
	esac
	printf '%dMiB\n' $((bytes * 8 / 10 >> 20))
}

# json_string TEXT: TEXT as a JSON string.
json_string() {
	local s=${1//\\/\\\\}
	s=${s//\"/\\\"}
	s=${s//$'\n'/\\n}
	s=${s//$'\t'/\\t}
	printf '"%s"' "$s"
}

# alert_policy FILE DISPLAY_NAME DOCUMENTATION CONDITION_NAME CONDITION
# [ALERT_STRATEGY]: writes to FILE an alert policy (the Monitoring API's
# AlertPolicy, as JSON) that notifies ALERT_CHANNEL when its one condition
# holds, with DOCUMENTATION (markdown) in the notification. CONDITION is
# the condition's type and settings, one JSON member; ALERT_STRATEGY a
# JSON object.
alert_policy() {
	local strategy=${6:+,
  \"alertStrategy\": $6}
	cat >"$1" <<EOF
{
  "displayName": $(json_string "$2"),
  "documentation": {"mimeType": "text/markdown", "content": $(json_string "$3")},
  "conditions": [{"displayName": $(json_string "$4"), $5}],
  "combiner": "OR",
  "enabled": true,
  "notificationChannels": [$(json_string "$ALERT_CHANNEL")]$strategy
}
EOF
}

# threshold FILTER VALUE DURATION: an alert condition (see alert_policy)
# that holds when a time series of FILTER, at its maximum over each
# minute, stays above VALUE for DURATION.
threshold() {
	printf '"conditionThreshold": {"filter": %s, "aggregations": [{"alignmentPeriod": "60s", "perSeriesAligner": "ALIGN_MAX"}], "comparison": "COMPARISON_GT", "thresholdValue": %s, "duration": "%s"}' \
		"$(json_string "$1")" "$2" "$3"
}

# ---------------------------------------------------------------- settings

PROJECT=${PROJECT_ID:-${GOOGLE_CLOUD_PROJECT:-}}
REGION=${REGION:-us-central1}
NAME=${SERVICE_NAME:-enrich-event}
TARGET=${TARGET:-function}
TOPIC=${TOPIC:-device-events}
DEAD_LETTER_TOPIC=${DEAD_LETTER_TOPIC:-}
SUBSCRIPTION=${SUBSCRIPTION:-}
BUCKET=${BUCKET:-}
OBJECT=${OBJECT:-devices.csv}
UPLOAD_METADATA=${UPLOAD_METADATA:-}
DATASET=${DATASET:-device_events}
TABLE=${TABLE:-events}
ERROR_TABLE=${ERROR_TABLE:-}
BQ_LOCATION=${BQ_LOCATION:-}
RUNTIME_SA=${RUNTIME_SA:-}
INVOKER_SA=${INVOKER_SA:-}
BUILD_SA=${BUILD_SA:-}
MEMORY=${MEMORY:-512Mi}
CPU=${CPU:-1}
CONCURRENCY=${CONCURRENCY:-80}
MAX_INSTANCES=${MAX_INSTANCES:-10}
MIN_INSTANCES=${MIN_INSTANCES:-0}
TIMEOUT=${TIMEOUT:-60}
MAX_DELIVERY_ATTEMPTS=${MAX_DELIVERY_ATTEMPTS:-100}
INGRESS=${INGRESS:-internal}
ALERT_CHANNEL=${ALERT_CHANNEL:-}
SOURCE=${SOURCE:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
DRY_RUN=${DRY_RUN:-0}
EXTRA_ENV=()

while (($#)); do
	arg=$1
	shift
	case $arg in
	-h | --help)
		usage
		exit 0
		;;
	--dry-run)
		DRY_RUN=1
		continue
		;;
	--*) flag=${arg%%=*} ;;
	*) die "unexpected argument: $arg (see --help)" ;;
	esac
	case $flag in
	--project) var=PROJECT ;;
	--region) var=REGION ;;
	--name) var=NAME ;;
	--target) var=TARGET ;;
	--topic) var=TOPIC ;;
	--dead-letter-topic) var=DEAD_LETTER_TOPIC ;;
	--subscription) var=SUBSCRIPTION ;;
	--bucket) var=BUCKET ;;
	--object) var=OBJECT ;;
	--upload-metadata) var=UPLOAD_METADATA ;;
	--dataset) var=DATASET ;;
	--table) var=TABLE ;;
	--error-table) var=ERROR_TABLE ;;
	--bq-location) var=BQ_LOCATION ;;
	--runtime-sa) var=RUNTIME_SA ;;
	--invoker-sa) var=INVOKER_SA ;;
	--build-sa) var=BUILD_SA ;;
	--memory) var=MEMORY ;;
	--cpu) var=CPU ;;
	--concurrency) var=CONCURRENCY ;;
	--max-instances) var=MAX_INSTANCES ;;
	--min-instances) var=MIN_INSTANCES ;;
	--timeout) var=TIMEOUT ;;
	--max-delivery-attempts) var=MAX_DELIVERY_ATTEMPTS ;;
	--ingress) var=INGRESS ;;
	--alert-channel) var=ALERT_CHANNEL ;;
	--env) var=EXTRA_ENV ;;
	--source) var=SOURCE ;;
	*) die "unknown flag: $flag (see --help)" ;;
	esac
	if [[ $arg == *=* ]]; then
		value=${arg#*=}
	else
		(($#)) || die "$flag needs a value (see --help)"
		value=$1
		shift
	fi
	if [[ $var == EXTRA_ENV ]]; then
		EXTRA_ENV+=("$value")
	else
		printf -v "$var" '%s' "$value"
	fi
done

if [[ -z $PROJECT ]] && ! dry; then
	PROJECT=$(gcloud config get-value project 2>/dev/null || true)
fi
if [[ -z $PROJECT ]]; then
	dry && die "no project: pass --project, or set PROJECT_ID or GOOGLE_CLOUD_PROJECT (a dry run does not ask gcloud for its configured project)"
	die "no project: pass --project, set PROJECT_ID or GOOGLE_CLOUD_PROJECT, or set gcloud's (gcloud config set project ID)"
fi
# A legacy domain-scoped id (example.com:proj) names its accounts
# proj.example.com and cannot name a bucket: the names below assume a plain id.
[[ $PROJECT != *:* ]] || die "project '$PROJECT' is domain-scoped: this script supports plain project ids only"
[[ $DRY_RUN == [01] ]] || die "DRY_RUN must be 0 or 1"

# Error table: the function defaults to TABLE_error_records, so BQ_ERROR_TABLE
# is only set when the user chose another name.
ERROR_TABLE_GIVEN=${ERROR_TABLE:+1}
DEAD_LETTER_TOPIC=${DEAD_LETTER_TOPIC:-$TOPIC-dead-letter}
SUBSCRIPTION=${SUBSCRIPTION:-$NAME-push}
BUCKET=${BUCKET:-$PROJECT-device-metadata}
ERROR_TABLE=${ERROR_TABLE:-${TABLE}_error_records}
VIEW=${TABLE}_dedup
BQ_LOCATION=${BQ_LOCATION:-$REGION}
RUNTIME_SA=${RUNTIME_SA:-$NAME-runtime}
INVOKER_SA=${INVOKER_SA:-$NAME-invoker}
BUILD_SA=${BUILD_SA:-$NAME-build}
TIMEOUT=${TIMEOUT%s}

case $TARGET in function | run) ;; *) die "--target must be function or run, not $TARGET" ;; esac
case $INGRESS in internal | all) ;; *) die "--ingress must be internal or all, not $INGRESS" ;; esac
for pair in "CONCURRENCY:$CONCURRENCY" "MAX_INSTANCES:$MAX_INSTANCES" \
	"MIN_INSTANCES:$MIN_INSTANCES" "TIMEOUT:$TIMEOUT" \
	"MAX_DELIVERY_ATTEMPTS:$MAX_DELIVERY_ATTEMPTS"; do
	[[ ${pair#*:} =~ ^[0-9]+$ ]] || die "${pair%%:*} must be a whole number, not '${pair#*:}'"
done
((TIMEOUT >= 1 && TIMEOUT <= 540)) || die "--timeout must be 1..540 seconds (event functions stop at 540 s)"
((MAX_DELIVERY_ATTEMPTS >= 5 && MAX_DELIVERY_ATTEMPTS <= 100)) || die "--max-delivery-attempts must be 5..100"
((MIN_INSTANCES <= MAX_INSTANCES)) || die "--min-instances must not exceed --max-instances"
if ((CONCURRENCY > 1)) && [[ $CPU == 0* || $CPU == .* ]]; then
	die "--concurrency above 1 needs --cpu of at least 1"
fi
GO_MEMORY_LIMIT=$(go_memory_limit "$MEMORY")
[[ -n $GO_MEMORY_LIMIT && $GO_MEMORY_LIMIT != 0MiB ]] || die "--memory must be a size such as 512Mi or 2Gi, not '$MEMORY'"
[[ $ERROR_TABLE != "$TABLE" && $ERROR_TABLE != "$VIEW" ]] || die "--error-table must differ from --table and ${VIEW}"
[[ $NAME =~ ^[a-z]([a-z0-9-]*[a-z0-9])?$ ]] ||
	die "--name must be lowercase letters, digits and dashes, starting with a letter and not ending with a dash, not '$NAME'"
ids=("$RUNTIME_SA" "$INVOKER_SA")
[[ $BUILD_SA == *@* ]] || ids+=("$BUILD_SA")
for id in "${ids[@]}"; do
	[[ $id =~ ^[a-z][a-z0-9-]{4,28}[a-z0-9]$ ]] ||
		die "service account id '$id' must be 6-30 lowercase letters, digits or dashes; pass --runtime-sa, --invoker-sa or --build-sa"
done
[[ -f $SOURCE/go.mod ]] || die "--source $SOURCE holds no go.mod (the function package is the module root)"
for file in "$SOURCE/sink/schema/rows.json" "$SOURCE/sink/schema/error_records.json"; do
	[[ -f $file ]] || die "missing schema file $file"
done
if [[ -n $ALERT_CHANNEL && ! $ALERT_CHANNEL =~ ^projects/[a-z0-9][a-z0-9-]*/notificationChannels/[A-Za-z0-9_-]+$ ]]; then
	die "--alert-channel must be a notification channel's full name, projects/PROJECT/notificationChannels/ID, not '$ALERT_CHANNEL' (gcloud beta monitoring channels list --project=$PROJECT --format='value(name,displayName)' lists them)"
fi
if [[ -n $UPLOAD_METADATA && ! -f $UPLOAD_METADATA ]]; then
	die "--upload-metadata: no such file: $UPLOAD_METADATA"
fi
# The function reads the object as its name's extension says, so a JSON
# file uploaded as devices.csv would be read as CSV and refused. A .json
# name also reads NDJSON (BigQuery's exports are so named): the content
# tells them apart.
if [[ -n $UPLOAD_METADATA ]]; then
	upload_format=$(metadata_format "$UPLOAD_METADATA")
	object_format=$(metadata_format "$OBJECT")
	if [[ -n $upload_format && -n $object_format && $upload_format != "$object_format" &&
		"$object_format/$upload_format" != json/ndjson ]]; then
		prefix=""
		[[ $OBJECT != */* ]] || prefix=${OBJECT%/*}/
		die "--upload-metadata $UPLOAD_METADATA is $upload_format but --object $OBJECT is read as $object_format (by its extension): pass --object=$prefix${UPLOAD_METADATA##*/}"
	fi
fi

RUNTIME_EMAIL=$RUNTIME_SA@$PROJECT.iam.gserviceaccount.com
INVOKER_EMAIL=$INVOKER_SA@$PROJECT.iam.gserviceaccount.com
BUILD_EMAIL=$BUILD_SA
[[ $BUILD_SA == *@* ]] || BUILD_EMAIL=$BUILD_SA@$PROJECT.iam.gserviceaccount.com
ACK_DEADLINE=$((TIMEOUT + 30 > 600 ? 600 : TIMEOUT + 30))

# Environment of the function: what it needs to find its data, then --env.
ENV_VARS=("METADATA_URI=gs://$BUCKET/$OBJECT" "BQ_TABLE=$PROJECT.$DATASET.$TABLE" "GOMEMLIMIT=$GO_MEMORY_LIMIT")
if [[ -n $ERROR_TABLE_GIVEN ]]; then
	ENV_VARS+=("BQ_ERROR_TABLE=$ERROR_TABLE") # a table of the same dataset
fi
for pair in ${EXTRA_ENV[@]+"${EXTRA_ENV[@]}"}; do
	[[ $pair =~ ^[A-Z_][A-Z0-9_]*= ]] || die "--env wants KEY=VALUE, not '$pair'"
	key=${pair%%=*}
	case $key in
	# The script creates, and grants the function access to, what the
	# flags name, not what these name: a value of your own is yours to
	# create and grant.
	METADATA_URI) note "warning: --env METADATA_URI: the function may read only what --bucket and --object name; grant its account read access to this object yourself" ;;
	BQ_TABLE | BQ_ERROR_TABLE) note "warning: --env $key: the script creates and grants only the tables --dataset, --table and --error-table name; create this one and grant the function's account roles/bigquery.dataEditor on it yourself" ;;
	METADATA_TTL | METADATA_MAX_STALENESS | METADATA_MAX_SHRINK | METADATA_SHRINK_WAIT | \
		METADATA_MISS_REFRESH_INTERVAL | DEVICE_ID_FIELD | EVENT_TIME_FIELD | \
		MAX_PAYLOAD_BYTES | MAX_REQUEST_BYTES | \
		BQ_BATCH_MAX_ROWS | BQ_BATCH_MAX_DELAY | BQ_WRITE_TIMEOUT | LOG_LEVEL | \
		GOOGLE_CLOUD_PROJECT | GOMEMLIMIT | GOGC) ;; # the last two are the Go runtime's
	*) note "warning: --env $key is not a setting the function reads" ;;
	esac
	kept=()
	for old in "${ENV_VARS[@]}"; do
		[[ ${old%%=*} == "$key" ]] || kept+=("$old")
	done
	ENV_VARS=("${kept[@]}" "$pair") # a later value replaces an earlier one
done
# gcloud splits --set-env-vars on commas unless told another delimiter.
ENV_FLAG=$(IFS=,; printf '%s' "${ENV_VARS[*]}")
if [[ $(IFS=; printf '%s' "${ENV_VARS[*]}") == *,* ]]; then
	[[ $ENV_FLAG != *'|'* ]] || die "--env values may hold commas or '|', not both"
	ENV_FLAG="^|^$(IFS='|'; printf '%s' "${ENV_VARS[*]}")"
fi

# The alert policies are made with gcloud alpha, a component of its own.
# (With prompts off, gcloud refuses a missing component instead of
# offering to install it.)
if [[ -n $ALERT_CHANNEL ]] && ! dry &&
	! CLOUDSDK_CORE_DISABLE_PROMPTS=1 gcloud alpha monitoring policies --help </dev/null >/dev/null 2>&1; then
	die "--alert-channel needs the gcloud alpha commands (gcloud alpha monitoring policies): install them with 'gcloud components install alpha'"
fi

exec 3>&1 # dry-run notes go to stdout from inside $(...)
SCRATCH=$(mktemp -d) # the script's own files, removed on exit
trap 'rm -rf "$SCRATCH"' EXIT
ERRORS=$SCRATCH/errors
if dry; then
	printf '# deploy.sh --dry-run: the commands for an empty project %s; nothing is run.\n' "$PROJECT"
fi

# ---------------------------------------------------------------- 1. APIs

APIS=(
	cloudfunctions.googleapis.com run.googleapis.com cloudbuild.googleapis.com
	artifactregistry.googleapis.com eventarc.googleapis.com pubsub.googleapis.com
	storage.googleapis.com bigquery.googleapis.com bigquerystorage.googleapis.com
	iam.googleapis.com
)
[[ -z $ALERT_CHANNEL ]] || APIS+=(monitoring.googleapis.com)
enabled=$(read_value "" gcloud services list --enabled --project="$PROJECT" --format='value(config.name)')
to_enable=()
for api in "${APIS[@]}"; do
	grep -qxF "$api" <<<"$enabled" || to_enable+=("$api")
done
if ((${#to_enable[@]})); then
	run gcloud services enable "${to_enable[@]}" --project="$PROJECT" --quiet
else
	note "APIs: enabled"
fi

PROJECT_NUMBER=$(read_value PROJECT_NUMBER gcloud projects describe "$PROJECT" --format='value(projectNumber)')
[[ -n $PROJECT_NUMBER ]] || die "could not read the number of project $PROJECT"
PUBSUB_AGENT=serviceAccount:service-$PROJECT_NUMBER@gcp-sa-pubsub.iam.gserviceaccount.com

# ---------------------------------------------------------------- 2. identities

accounts=$(read_value "" gcloud iam service-accounts list --project="$PROJECT" --format='value(email)')
# ensure_account NEW ID DISPLAY_NAME
ensure_account() {
	if [[ $1 == 1 ]]; then
		run gcloud iam service-accounts create "$2" --project="$PROJECT" \
			--display-name="$3" --format=none --quiet
	else
		note "service account $2: present"
	fi
}
runtime_new=$(missing "$accounts" "$RUNTIME_EMAIL")
invoker_new=$(missing "$accounts" "$INVOKER_EMAIL")
ensure_account "$runtime_new" "$RUNTIME_SA" "$NAME runtime (reads metadata, writes BigQuery)"
ensure_account "$invoker_new" "$INVOKER_SA" "$NAME invoker (Pub/Sub delivery)"
# Pub/Sub signs each push's OIDC token as the invoker. Its service agent
# has that right through its own role in projects made since April 2021,
# not in older ones (gcloud only warns): grant it on this one account.
grant "$invoker_new" roles/iam.serviceAccountTokenCreator "$PUBSUB_AGENT" \
	"gcloud iam service-accounts" "$INVOKER_EMAIL" --project="$PROJECT"
# Builds run as their own account: a new project has no usable default one.
if [[ $BUILD_SA != *@* ]]; then
	build_new=$(missing "$accounts" "$BUILD_EMAIL")
	ensure_account "$build_new" "$BUILD_SA" "$NAME build (Cloud Build)"
	grant "$build_new" roles/cloudbuild.builds.builder "serviceAccount:$BUILD_EMAIL" \
		"gcloud projects" "$PROJECT"
fi

# ---------------------------------------------------------------- 3. metadata bucket

bucket_new=0
if exists gcloud storage buckets describe "gs://$BUCKET" --project="$PROJECT"; then
	note "bucket gs://$BUCKET: present"
else
	bucket_new=1
	# Versioning keeps the files that uploads replace, and the lifecycle
	# rule the last 3 of them: an instance that starts after a bad upload
	# serves the newest one that passes instead of failing every event.
	# numNewerVersions counts the live version too: 4 keeps 3 replaced ones.
	lifecycle=$SCRATCH/lifecycle.json
	printf '%s\n' '{"rule": [{"action": {"type": "Delete"}, "condition": {"isLive": false, "numNewerVersions": 4}}]}' >"$lifecycle"
	run gcloud storage buckets create "gs://$BUCKET" --project="$PROJECT" \
		--location="$REGION" --uniform-bucket-level-access \
		--public-access-prevention --lifecycle-file="$lifecycle" --quiet
	run gcloud storage buckets update "gs://$BUCKET" --project="$PROJECT" --versioning --quiet
fi
grant $((bucket_new | runtime_new)) roles/storage.objectViewer "serviceAccount:$RUNTIME_EMAIL" \
	"gcloud storage buckets" "gs://$BUCKET" --project="$PROJECT"

if [[ -n $UPLOAD_METADATA ]]; then
	remote_md5=""
	if ((!bucket_new)); then
		remote_md5=$(lookup gcloud storage objects describe "gs://$BUCKET/$OBJECT" \
			--project="$PROJECT" --format='value(md5_hash)') || { (($? == 3)) || exit; }
	fi
	if [[ -n $remote_md5 && $remote_md5 == "$(md5_base64 "$UPLOAD_METADATA")" ]]; then
		note "gs://$BUCKET/$OBJECT: same content as $UPLOAD_METADATA"
	else
		run gcloud storage cp "$UPLOAD_METADATA" "gs://$BUCKET/$OBJECT" --project="$PROJECT" --quiet
	fi
fi

# ---------------------------------------------------------------- 4. Pub/Sub topics

topics=$(read_value "" gcloud pubsub topics list --project="$PROJECT" --format='value(name.basename())')
subscriptions=$(read_value "" gcloud pubsub subscriptions list --project="$PROJECT" --format='value(name.basename())')
for topic in "$TOPIC" "$DEAD_LETTER_TOPIC"; do
	if [[ $(missing "$topics" "$topic") == 1 ]]; then
		run gcloud pubsub topics create "$topic" --project="$PROJECT" --format=none --quiet
	else
		note "topic $topic: present"
	fi
done
# Dead-lettered messages are kept only if a subscription holds them, and
# for as long as Pub/Sub allows (31 days), for someone to replay them.
if [[ $(missing "$subscriptions" "$DEAD_LETTER_TOPIC-sub") == 1 ]]; then
	run gcloud pubsub subscriptions create "$DEAD_LETTER_TOPIC-sub" --project="$PROJECT" \
		--topic="$DEAD_LETTER_TOPIC" --message-retention-duration=31d \
		--expiration-period=never --format=none --quiet
elif [[ $(read_value 2678400s gcloud pubsub subscriptions describe "$DEAD_LETTER_TOPIC-sub" --project="$PROJECT" \
	--format='value(messageRetentionDuration)') != 2678400s ]]; then
	run gcloud pubsub subscriptions update "$DEAD_LETTER_TOPIC-sub" --project="$PROJECT" \
		--message-retention-duration=31d --format=none --quiet
else
	note "subscription $DEAD_LETTER_TOPIC-sub: present"
fi
grant "$(missing "$topics" "$DEAD_LETTER_TOPIC")" roles/pubsub.publisher "$PUBSUB_AGENT" \
	"gcloud pubsub topics" "$DEAD_LETTER_TOPIC" --project="$PROJECT"
# The run target's subscription is made now, before the build and deploy
# (minutes), as a pull subscription: a topic keeps nothing that no
# subscription holds, so the events published meanwhile would be lost.
# Step 6 points it at the service once the service has a URL.
sub_flags=(
	--ack-deadline="$ACK_DEADLINE" --dead-letter-topic="$DEAD_LETTER_TOPIC"
	--max-delivery-attempts="$MAX_DELIVERY_ATTEMPTS"
	--min-retry-delay=10s --max-retry-delay=600s --expiration-period=never
)
subscription_new=0
if [[ $TARGET == run ]]; then
	subscription_new=$(missing "$subscriptions" "$SUBSCRIPTION")
	if ((subscription_new)); then
		run gcloud pubsub subscriptions create "$SUBSCRIPTION" --project="$PROJECT" \
			--topic="$TOPIC" "${sub_flags[@]}" --format=none --quiet
	fi
fi

# ---------------------------------------------------------------- 5. BigQuery

# One listing answers for the dataset and all its tables (bq prints nothing
# for an empty dataset and fails with "Not found" for a missing one).
if tables=$(lookup bq --format=json ls --max_results=10000 "$PROJECT:$DATASET"); then
	note "dataset $PROJECT:$DATASET: present"
else
	(($? == 3)) || exit
	run bq --format=none mk --dataset --location="$BQ_LOCATION" \
		--description="EnrichEvent output" "$PROJECT:$DATASET"
fi
has_table() {
	grep -qF "\"tableId\":\"$1\"" <<<"$tables" && note "table $PROJECT:$DATASET.$1: present"
}
table_new=0
has_table "$TABLE" || table_new=1
((table_new == 0)) ||
	run bq --format=none mk --table --schema="$SOURCE/sink/schema/rows.json" \
		--time_partitioning_type=DAY --time_partitioning_field=event_time \
		--clustering_fields=device_id \
		--description="Enriched device events, at least once: query $VIEW" \
		"$PROJECT:$DATASET.$TABLE"
error_table_new=0
has_table "$ERROR_TABLE" || error_table_new=1
((error_table_new == 0)) ||
	run bq --format=none mk --table --schema="$SOURCE/sink/schema/error_records.json" \
		--time_partitioning_type=DAY --time_partitioning_field=timestamp \
		--description="Events EnrichEvent could not process" \
		"$PROJECT:$DATASET.$ERROR_TABLE"
# Redeliveries of a message carry the same event_time, so partitioning the
# window by it too still keeps one row per message_id, and lets BigQuery
# apply a filter on event_time before deduplicating (partition pruning).
VIEW_SQL="SELECT * EXCEPT (rn) FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY message_id, event_time ORDER BY ingest_time) AS rn FROM \`$PROJECT.$DATASET.$TABLE\`) WHERE rn = 1"
has_table "$VIEW" ||
	run bq --format=none mk --use_legacy_sql=false \
		--description="One row per Pub/Sub message_id (the first ingested)" \
		--view="$VIEW_SQL" "$PROJECT:$DATASET.$VIEW"
# The function appends to its two tables and looks them up: dataEditor on
# those tables only, not on the dataset (its view and any later table).
grant_table $((table_new | runtime_new)) roles/bigquery.dataEditor "serviceAccount:$RUNTIME_EMAIL" "$TABLE"
grant_table $((error_table_new | runtime_new)) roles/bigquery.dataEditor "serviceAccount:$RUNTIME_EMAIL" "$ERROR_TABLE"

# ---------------------------------------------------------------- 6. deploy

COMMON_FLAGS=(
	--project="$PROJECT" --region="$REGION" --source="$SOURCE"
	--service-account="$RUNTIME_EMAIL" --set-env-vars="$ENV_FLAG"
	--memory="$MEMORY" --cpu="$CPU" --concurrency="$CONCURRENCY"
	--max-instances="$MAX_INSTANCES" --min-instances="$MIN_INSTANCES"
	--build-service-account="projects/$PROJECT/serviceAccounts/$BUILD_EMAIL"
)

if [[ $TARGET == function ]]; then
	ingress=internal-only
	[[ $INGRESS == all ]] && ingress=all
	# A trigger given again on an update makes Cloud Functions delete and
	# recreate it, with a new subscription: the old one's backlog (events
	# being redelivered) is lost. So the trigger flags are passed only when
	# the function has no trigger yet, or one that differs.
	trigger_flags=(--trigger-topic="$TOPIC" --retry --trigger-service-account="$INVOKER_EMAIL")
	if current=$(lookup gcloud functions describe "$NAME" --gen2 --project="$PROJECT" --region="$REGION" \
		--format='value(eventTrigger.pubsubTopic,eventTrigger.serviceAccountEmail,eventTrigger.retryPolicy,eventTrigger.trigger)'); then
		# A function whose first deploy failed has no trigger yet; one
		# whose update failed keeps its trigger, which must not be recreated.
		if [[ $current == "projects/$PROJECT/topics/$TOPIC	$INVOKER_EMAIL	RETRY_POLICY_RETRY	"?* ]]; then
			trigger_flags=()
			note "trigger of $NAME: present (kept, with its subscription)"
		elif [[ $current == projects/* && $current != "projects/$PROJECT/topics/$TOPIC	"* ]]; then
			note "warning: the trigger of $NAME reads ${current%%	*}, not topic $TOPIC: Cloud Functions replaces it and its subscription, and the events waiting in the old subscription are dropped"
		fi
	else
		(($? == 3)) || exit
	fi
	# --serve-all-traffic-latest-revision: after a rollback that pinned the
	# traffic to an older revision (see README), a rerun serves the new one.
	# Eventarc creates its service agent with the project's first trigger,
	# and the agent's permissions take minutes to propagate: until then the
	# trigger, and so the deploy, fails. So does the build while the build
	# account's roles, granted by this run, are propagating. It is tried
	# again after 30 s and then every 60 s, 6 times in all (each attempt
	# builds the code again).
	retry_while 'Eventarc Service Agent|missing permission on the build service account' \
		"permissions are still propagating (Eventarc's service agent, new with the project's first trigger, or the roles of the build account)" \
		6 $((RETRY_DELAY * 15)) \
		gcloud functions deploy "$NAME" --gen2 --runtime=go126 \
		--entry-point=EnrichEvent ${trigger_flags[@]+"${trigger_flags[@]}"} --timeout="${TIMEOUT}s" \
		--ingress-settings="$ingress" --no-allow-unauthenticated \
		--serve-all-traffic-latest-revision \
		"${COMMON_FLAGS[@]}" --format=none --quiet
	fields=$(read_value "$NAME	TRIGGER" gcloud functions describe "$NAME" --gen2 \
		--project="$PROJECT" --region="$REGION" \
		--format='value(serviceConfig.service,eventTrigger.trigger)')
	IFS=$'\t' read -r service trigger <<<"$fields"
	[[ -n $service && -n $trigger ]] || die "function $NAME has no service or trigger yet"
	service=${service##*/}
	subscription=$(read_value TRIGGER_SUBSCRIPTION gcloud eventarc triggers describe "${trigger##*/}" \
		--project="$PROJECT" --location="$REGION" --format='value(transport.pubsub.subscription)')
	[[ -n $subscription ]] || die "trigger $trigger has no Pub/Sub subscription"
	subscription=${subscription##*/}
	grant "$invoker_new" roles/run.invoker "serviceAccount:$INVOKER_EMAIL" \
		"gcloud run services" "$service" --project="$PROJECT" --region="$REGION"
	# The trigger's subscription belongs to Eventarc; only its dead-letter
	# policy is set here.
	have=$(read_value "" gcloud pubsub subscriptions describe "$subscription" --project="$PROJECT" \
		--format='value(deadLetterPolicy.deadLetterTopic,deadLetterPolicy.maxDeliveryAttempts)')
	if [[ $have == "projects/$PROJECT/topics/$DEAD_LETTER_TOPIC	$MAX_DELIVERY_ATTEMPTS" ]]; then
		note "dead-letter policy on $subscription: present"
	else
		run gcloud pubsub subscriptions update "$subscription" --project="$PROJECT" \
			--dead-letter-topic="$DEAD_LETTER_TOPIC" \
			--max-delivery-attempts="$MAX_DELIVERY_ATTEMPTS" --format=none --quiet
	fi
else
	ingress=internal
	[[ $INGRESS == all ]] && ingress=all
	run gcloud run deploy "$NAME" --function=EnrichEvent --base-image=go126 \
		--no-allow-unauthenticated --ingress="$ingress" --timeout="${TIMEOUT}s" \
		"${COMMON_FLAGS[@]}" --quiet
	service=$NAME
	fields=$(read_value "https://SERVICE_URL	True	100" gcloud run services describe "$NAME" \
		--project="$PROJECT" --region="$REGION" \
		--format='value(status.url,spec.traffic[0].latestRevision,spec.traffic[0].percent)')
	IFS=$'\t' read -r url latest percent <<<"$fields"
	[[ -n $url ]] || die "service $NAME has no URL"
	# After a rollback that pinned the traffic to an older revision (see
	# README), a rerun sends it back to the revision just deployed.
	if [[ $latest != True || $percent != 100 ]]; then
		run gcloud run services update-traffic "$NAME" --to-latest \
			--project="$PROJECT" --region="$REGION" --format=none --quiet
	fi
	grant "$invoker_new" roles/run.invoker "serviceAccount:$INVOKER_EMAIL" \
		"gcloud run services" "$NAME" --project="$PROJECT" --region="$REGION"
	subscription=$SUBSCRIPTION
	# The framework reads the topic from the push path (see PLATFORM.md).
	endpoint=$url/projects/$PROJECT/topics/$TOPIC
	push_flags=(
		--push-endpoint="$endpoint" --push-auth-service-account="$INVOKER_EMAIL"
		--push-auth-token-audience="$url" "${sub_flags[@]}"
	)
	# An empty expirationPolicy.ttl is "never expires". The subscription
	# exists: step 4 made it, as a pull subscription, if it did not.
	want="projects/$PROJECT/topics/$TOPIC	$endpoint	$INVOKER_EMAIL	$url	$ACK_DEADLINE	projects/$PROJECT/topics/$DEAD_LETTER_TOPIC	$MAX_DELIVERY_ATTEMPTS	10s	600s	"
	have=$(read_value "projects/$PROJECT/topics/$TOPIC" gcloud pubsub subscriptions describe "$subscription" --project="$PROJECT" \
		--format='value(topic,pushConfig.pushEndpoint,pushConfig.oidcToken.serviceAccountEmail,pushConfig.oidcToken.audience,ackDeadlineSeconds,deadLetterPolicy.deadLetterTopic,deadLetterPolicy.maxDeliveryAttempts,retryPolicy.minimumBackoff,retryPolicy.maximumBackoff,expirationPolicy.ttl)')
	if [[ $have == "$want" ]]; then
		note "push subscription $subscription: present"
	elif [[ ${have%%	*} != "projects/$PROJECT/topics/$TOPIC" ]]; then
		die "subscription $subscription reads ${have%%	*}, not topic $TOPIC: pass another --subscription"
	else
		run gcloud pubsub subscriptions update "$subscription" --project="$PROJECT" \
			"${push_flags[@]}" --format=none --quiet
	fi
fi
# Dead-lettering: Pub/Sub's service agent acks what it forwards.
grant "$subscription_new" roles/pubsub.subscriber "$PUBSUB_AGENT" \
	"gcloud pubsub subscriptions" "$subscription" --project="$PROJECT"

# ---------------------------------------------------------------- 7. alerts

# With --alert-channel, three alert policies watch the signals of the
# README's "Operating" section, each notifying the channel. A policy is
# known by its display name: one that exists is left as it is, so that an
# operator's edits to it are kept (and a changed setting of the script is
# not applied to it: delete the policy to have it made again).
if [[ -n $ALERT_CHANNEL ]]; then
	alert_events="$NAME: events waiting"
	alert_dead="$NAME: dead letters"
	alert_metadata="$NAME: metadata rejected"
	policies=$(read_value "" gcloud alpha monitoring policies list --project="$PROJECT" \
		--filter="displayName=($(json_string "$alert_events") $(json_string "$alert_dead") $(json_string "$alert_metadata"))" \
		--format='value(displayName)')
	# ensure_alert ID DISPLAY_NAME DOCUMENTATION CONDITION_NAME CONDITION
	# [ALERT_STRATEGY]: creates the alert policy (see alert_policy) from
	# $SCRATCH/ID.json unless the project has one of that display name.
	ensure_alert() {
		if [[ $(missing "$policies" "$2") == 0 ]]; then
			note "alert policy '$2': present (kept as it is)"
			return 0
		fi
		local file=$SCRATCH/$1.json
		alert_policy "$file" "${@:2}"
		if dry; then
			printf '# %s:\n' "$file"
			sed 's/^/#   /' "$file"
		fi
		run gcloud alpha monitoring policies create --project="$PROJECT" \
			--policy-from-file="$file" --format=none --quiet
	}
	pubsub_filter() { # METRIC SUBSCRIPTION
		printf 'metric.type="pubsub.googleapis.com/subscription/%s" AND resource.type="pubsub_subscription" AND resource.labels.project_id="%s" AND resource.labels.subscription_id="%s"' \
			"$1" "$PROJECT" "$2"
	}
	service_logs="resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"$service\""
	read_errors="    gcloud logging read '$service_logs AND severity>=ERROR' --project=$PROJECT --limit=20"

	ensure_alert alert-events "$alert_events" \
		"An event of subscription \`$subscription\` has waited more than 10 minutes: Pub/Sub is redelivering events that $NAME failed. Its ERROR lines say why (the README's \"Log lines\" says what each means):

$read_errors" \
		"oldest unacked event older than 10 minutes" \
		"$(threshold "$(pubsub_filter oldest_unacked_message_age "$subscription")" 600 300s)"

	ensure_alert alert-dead "$alert_dead" \
		"Events failed every delivery ($MAX_DELIVERY_ATTEMPTS attempts) and wait in \`$DEAD_LETTER_TOPIC-sub\`, for 31 days. Fix the cause (the ERROR lines of $NAME), then publish them to the topic again, as the README's \"Replaying dead letters\" says, until it replays 0:

    go run ./cmd/replay -project=$PROJECT -subscription=$DEAD_LETTER_TOPIC-sub -topic=$TOPIC" \
		"dead letters waiting" \
		"$(threshold "$(pubsub_filter num_undelivered_messages "$DEAD_LETTER_TOPIC-sub")" 0 60s)"

	# The messages are those of the README's "Log lines" table. A gen2
	# function logs as the Cloud Run service of the same name.
	ensure_alert alert-metadata "$alert_metadata" \
		"$NAME could not load the device metadata \`gs://$BUCKET/$OBJECT\`, or rejected a new version of it. The line's \`error\` says why; the README's \"Log lines\" says what to do (usually: upload a good file):

$read_errors" \
		"metadata rejected or not loaded" \
		"\"conditionMatchedLog\": {\"filter\": $(json_string "$service_logs AND (jsonPayload.message=~\"^metadata rejected\" OR jsonPayload.message=\"metadata still rejected\" OR jsonPayload.message=\"metadata load failed\")")}" \
		'{"notificationRateLimit": {"period": "3600s"}, "autoClose": "86400s"}'
fi

# ---------------------------------------------------------------- 8. summary

dry && exit 0
cat <<EOF

Deployed $NAME ($TARGET) in $PROJECT/$REGION.
  events:        topic $TOPIC -> subscription $subscription -> service $service
  dead letters:  topic $DEAD_LETTER_TOPIC after $MAX_DELIVERY_ATTEMPTS attempts, kept 31 days in $DEAD_LETTER_TOPIC-sub
  metadata:      gs://$BUCKET/$OBJECT (read by $RUNTIME_EMAIL)
  rows:          $PROJECT.$DATASET.$TABLE (deduplicated: $PROJECT.$DATASET.$VIEW)
  errors:        $PROJECT.$DATASET.$ERROR_TABLE
EOF
[[ -z $ALERT_CHANNEL ]] || cat <<EOF
  alerts:        '$alert_events', '$alert_dead', '$alert_metadata' -> $ALERT_CHANNEL
EOF
cat <<EOF

Publish a test event:
  gcloud pubsub topics publish $TOPIC --project=$PROJECT \\
    --message='{"device_id":"dev-1","event_time":"$(date -u +%Y-%m-%dT%H:%M:%SZ)"}'
Read the rows (the view deduplicates on message_id):
  bq query --project_id=$PROJECT --use_legacy_sql=false \\
    'SELECT * FROM \`$PROJECT.$DATASET.$VIEW\` WHERE event_time > TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 1 HOUR) ORDER BY ingest_time DESC LIMIT 10'
  bq query --project_id=$PROJECT --use_legacy_sql=false \\
    'SELECT timestamp, reason, errorMessage, payloadString FROM \`$PROJECT.$DATASET.$ERROR_TABLE\` ORDER BY timestamp DESC LIMIT 10'
Read the logs:
  gcloud logging read 'resource.type="cloud_run_revision" AND resource.labels.service_name="$service"' --project=$PROJECT --limit=20
Read dead letters:
  gcloud pubsub subscriptions pull $DEAD_LETTER_TOPIC-sub --project=$PROJECT --limit=10
EOF
