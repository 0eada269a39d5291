package e2e

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// emulatorStartTimeout bounds the JVM start of the Pub/Sub emulator on a
// busy two-core machine.
const emulatorStartTimeout = 90 * time.Second

// errMissing marks a missing prerequisite (Java, gcloud or its Pub/Sub
// emulator): the test skips, or fails under CI=true.
var errMissing = errors.New("missing prerequisite")

// emulatorCommand returns the command that runs the Pub/Sub emulator on
// 127.0.0.1:port: the emulator's jar run directly by java, so that killing
// its process group kills the emulator (gcloud would leave a java child).
func emulatorCommand(port int) (*exec.Cmd, error) {
	java, javaErr := exec.LookPath("java")
	if javaErr != nil {
		javaErr = errors.New("java is not on PATH (the Pub/Sub emulator needs Java 11+)")
	}
	jar, jarErr := emulatorJar()
	if err := errors.Join(javaErr, jarErr); err != nil {
		return nil, fmt.Errorf("%w: %w", errMissing, err)
	}
	return exec.Command(java, "-jar", jar, "--host=127.0.0.1", "--port="+strconv.Itoa(port)), nil
}

// emulatorJar finds the Pub/Sub emulator's jar in the gcloud SDK.
func emulatorJar() (string, error) {
	gcloud, err := exec.LookPath("gcloud")
	if err != nil {
		return "", errors.New("gcloud is not on PATH (install the gcloud CLI and its pubsub-emulator component)")
	}
	out, err := exec.Command(gcloud, "info", "--format=value(installation.sdk_root)").Output()
	if err != nil {
		return "", fmt.Errorf("gcloud info: %v", err)
	}
	root := strings.TrimSpace(string(out))
	jars, _ := filepath.Glob(filepath.Join(root, "platform", "pubsub-emulator", "lib", "cloud-pubsub-emulator-*.jar"))
	if len(jars) == 0 {
		return "", fmt.Errorf("no Pub/Sub emulator jar under %s/platform/pubsub-emulator/lib (gcloud components install pubsub-emulator)", root)
	}
	return jars[len(jars)-1], nil
}

// emulator is a running Pub/Sub emulator and a client connected to it.
type emulator struct {
	proc    *process
	addr    string // 127.0.0.1:port
	project string
	client  *pubsub.Client
}

// startEmulator starts the emulator and waits, bounded, until it answers.
func startEmulator(ctx context.Context, project string) (*emulator, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cmd, err := emulatorCommand(port)
	if err != nil {
		return nil, err
	}
	proc, err := startProcess("pubsub emulator", cmd)
	if err != nil {
		return nil, err
	}
	e := &emulator{proc: proc, addr: "127.0.0.1:" + strconv.Itoa(port), project: project}
	if err := e.waitReady(ctx); err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

// waitReady waits until the emulator listens and answers an RPC.
func (e *emulator) waitReady(ctx context.Context) error {
	start := time.Now()
	if err := e.proc.waitListening(e.addr, emulatorStartTimeout); err != nil {
		return err
	}
	c, err := pubsub.NewClient(ctx, e.project,
		option.WithEndpoint(e.addr),
		option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
		option.WithTelemetryDisabled())
	if err != nil {
		return fmt.Errorf("pubsub client for the emulator: %w", err)
	}
	e.client = c
	for {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := e.client.TopicAdminClient.ListTopics(rctx, &pubsubpb.ListTopicsRequest{Project: "projects/" + e.project}).Next()
		cancel()
		if err == nil || errors.Is(err, iterator.Done) {
			return nil
		}
		if time.Since(start) > emulatorStartTimeout {
			return fmt.Errorf("pubsub emulator on %s does not answer after %v: %v\n%s", e.addr, emulatorStartTimeout, err, e.proc.stderr)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// close closes the client and kills the emulator's process group.
func (e *emulator) close() {
	if e.client != nil {
		e.client.Close()
	}
	e.proc.kill()
}

// pushSubscription is a topic with one push subscription to an endpoint.
type pushSubscription struct {
	topic, sub string // full names
	publisher  *pubsub.Publisher
}

// ackDeadline is every push subscription's ack deadline: how long the
// emulator waits for the function's answer before it redelivers.
const ackDeadline = 15 * time.Second

// createPush creates topic id and a push subscription id+"-push" whose
// endpoint is the function on port, at the path the functions framework
// reads the topic from.
func (e *emulator) createPush(ctx context.Context, id string, port int) (*pushSubscription, error) {
	topic, err := e.createTopic(ctx, id)
	if err != nil {
		return nil, err
	}
	sub := fmt.Sprintf("projects/%s/subscriptions/%s-push", e.project, id)
	_, err = e.client.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name:  sub,
		Topic: topic,
		PushConfig: &pubsubpb.PushConfig{
			PushEndpoint: fmt.Sprintf("http://127.0.0.1:%d/%s", port, topic),
		},
		AckDeadlineSeconds: int32(ackDeadline / time.Second),
		// No RetryPolicy: the emulator (0.8.20) then redelivers a nacked
		// message about every second, forever. With a RetryPolicy it
		// stops redelivering after three attempts once several messages
		// fail together (measured: 5 messages, 1s..5s backoff, no attempt
		// in the 36 s after the third), which would stall every fault
		// scenario.
	})
	if err != nil {
		return nil, fmt.Errorf("create subscription %s: %w", sub, err)
	}
	p := e.client.Publisher(topic)
	return &pushSubscription{topic: topic, sub: sub, publisher: p}, nil
}

// createTopic creates topic id and returns its full name.
func (e *emulator) createTopic(ctx context.Context, id string) (string, error) {
	topic := fmt.Sprintf("projects/%s/topics/%s", e.project, id)
	if _, err := e.client.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: topic}); err != nil {
		return "", fmt.Errorf("create topic %s: %w", topic, err)
	}
	return topic, nil
}
