package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
)

// replayTimeout bounds one run of cmd/replay.
const replayTimeout = 60 * time.Second

// TestReplayDeadLetters runs cmd/replay against the Pub/Sub emulator: a dry
// run and runs that cannot start leave the dead letters in place, a run
// replays each of them once to the topic without the dead-letter
// attributes and empties the subscription, and a dead letter whose publish
// fails stays in the subscription.
func TestReplayDeadLetters(t *testing.T) {
	h := newHarness(t)
	bin, err := buildCommand(t.TempDir(), "./cmd/replay")
	if err != nil {
		t.Fatal(err)
	}
	r := &replayHarness{emu: h.emu, bin: bin}
	r.createTopicSub(t, "orders-dead-letter", "orders-dead-letter-sub")
	r.createTopicSub(t, "orders", "orders-observer")
	sent := r.publishDeadLetters(t, "orders-dead-letter", "a")
	sub, topic := "orders-dead-letter-sub", "orders"
	summary := fmt.Sprintf("from projects/%s/subscriptions/%s to projects/%s/topics/%s", project, sub, project, topic)

	// The dry run has dead letters of its own: those it nacks may come back
	// only after an ack deadline, which would make the replay below flaky.
	t.Run("dry_run", func(t *testing.T) {
		r.createTopicSub(t, "audit-dead-letter", "audit-dead-letter-sub")
		listed := r.publishDeadLetters(t, "audit-dead-letter", "d")
		res := r.run(t, "-project", project, "-subscription", "audit-dead-letter-sub", "-topic", topic, "-idle", "2s", "-dry-run")
		res.want(t, 0, fmt.Sprintf("dry run: listed 3, replayed 0, failed 0, from projects/%s/subscriptions/audit-dead-letter-sub to projects/%s/topics/%s", project, project, topic))
		lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
		if len(lines) != len(listed) {
			t.Fatalf("stdout has %d lines, want one per dead letter (%d):\n%s", len(lines), len(listed), res.stdout)
		}
		defer func() { // and leaves them in place
			if left := r.receive(t, "audit-dead-letter-sub", len(listed), 2*time.Second); len(left) != len(listed) {
				t.Errorf("audit-dead-letter-sub holds %d messages after the dry run, want %d", len(left), len(listed))
			}
		}()
		unseen := maps.Clone(listed)
		for _, line := range lines {
			var got struct {
				ID          string            `json:"id"`
				PublishTime time.Time         `json:"publish_time"`
				DeadLetter  map[string]string `json:"dead_letter"`
				Size        int               `json:"size"`
				Attributes  map[string]string `json:"attributes"`
			}
			if err := json.Unmarshal([]byte(line), &got); err != nil {
				t.Fatalf("stdout line %q: %v", line, err)
			}
			data, ok := unseen[got.ID]
			delete(unseen, got.ID)
			switch {
			case !ok:
				t.Errorf("line %s: id not among the dead letters not yet listed %v", line, slices.Collect(maps.Keys(unseen)))
			case got.Size != len(data) || got.PublishTime.IsZero():
				t.Errorf("line %s: size %d, publish time %v; want %d and a time", line, got.Size, got.PublishTime, len(data))
			case !maps.Equal(got.Attributes, map[string]string{"origin": "headset"}):
				t.Errorf("line %s: attributes %v, want origin=headset only", line, got.Attributes)
			case !maps.Equal(got.DeadLetter, deadLetterAttrs()):
				t.Errorf("line %s: dead_letter %v, want %v", line, got.DeadLetter, deadLetterAttrs())
			}
		}
	})

	// The runs that cannot start leave the dead letters in place and publish
	// nothing: the next subtest replays all three, and the observer
	// receives each once.
	t.Run("cannot_start", func(t *testing.T) {
		r.createTopicSub(t, "nobody-listens", "") // what is published to it is dropped
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"-project", project, "-subscription", sub, "-topic", "nowhere"}, "topic projects/" + project + "/topics/nowhere not found"},
			{[]string{"-project", project, "-subscription", "nowhere-sub", "-topic", topic}, "subscription projects/" + project + "/subscriptions/nowhere-sub not found"},
			{[]string{"-project", project, "-subscription", sub}, "missing -topic"},
			{[]string{"-project", project, "-subscription", sub, "-topic", "orders-dead-letter"}, "would loop"},
			{[]string{"-project", project, "-subscription", sub, "-topic", "nobody-listens"}, "topic projects/" + project + "/topics/nobody-listens has no subscription"},
		} {
			r.run(t, append(tc.args, "-idle", "2s")...).want(t, 1, tc.want)
		}
	})

	t.Run("replay", func(t *testing.T) {
		r.run(t, "-project", project, "-subscription", sub, "-topic", topic, "-idle", "2s").want(t, 0, "replayed 3, failed 0, "+summary)
		r.expectReplayed(t, "orders-observer", sent)
		// Nothing is left: a second run, its project from the environment,
		// replays nothing, and the subscription itself is empty.
		r.run(t, "-subscription", sub, "-topic", topic, "-idle", "2s").want(t, 0, "replayed 0, failed 0, "+summary)
		if got := r.receive(t, sub, 0, 2*time.Second); len(got) != 0 {
			t.Errorf("%s still holds %d messages after the replay", sub, len(got))
		}
	})

	t.Run("publish_fails", func(t *testing.T) {
		r.createTopicSub(t, "returns-dead-letter", "returns-dead-letter-sub")
		r.createTopicSub(t, "returns", "returns-observer")
		p := r.start(t, "-project", project, "-subscription", "returns-dead-letter-sub", "-topic", "returns", "-idle", "30s", "-limit", "3")
		r.waitFor(t, "replay to start receiving", func() bool { return strings.Contains(p.stderr.String(), "reading ") })
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := r.emu.client.TopicAdminClient.DeleteTopic(ctx, &pubsubpb.DeleteTopicRequest{Topic: "projects/" + project + "/topics/returns"}); err != nil {
			t.Fatal(err)
		}
		returns := r.publishDeadLetters(t, "returns-dead-letter", "b")
		r.wait(t, p).want(t, 1, "replayed 0, failed 3, ")
		// The dead letters are still there: runs to a topic that exists
		// replay all three, once each. Pub/Sub may hold back a nacked
		// message until an ack deadline passes, so it may take more than
		// one run, as the README says.
		replayed := 0
		for run := 0; run < 4 && replayed < len(returns); run++ {
			res := r.run(t, "-project", project, "-subscription", "returns-dead-letter-sub", "-topic", topic, "-idle", "5s")
			var n, failed int
			i := strings.LastIndex(res.stderr, "replayed ")
			if i < 0 || res.code != 0 {
				t.Fatalf("replay to %s: exit %d, stderr %q; want 0 and a summary", topic, res.code, res.stderr)
			}
			if _, err := fmt.Sscanf(res.stderr[i:], "replayed %d, failed %d,", &n, &failed); err != nil || failed != 0 {
				t.Fatalf("replay to %s: exit %d, stderr %q; want a summary with no failure", topic, res.code, res.stderr)
			}
			replayed += n
		}
		if replayed != len(returns) {
			t.Errorf("runs replayed %d dead letters in all, want %d", replayed, len(returns))
		}
		r.expectReplayed(t, "orders-observer", returns)
	})

	t.Run("sigterm", func(t *testing.T) {
		p := r.start(t, "-project", project, "-subscription", sub, "-topic", topic, "-idle", "5m")
		r.waitFor(t, "replay to start receiving", func() bool { return strings.Contains(p.stderr.String(), "reading ") })
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		r.wait(t, p).want(t, 0, "replayed 0, failed 0, "+summary)
	})
}

// replayHarness runs cmd/replay, built as bin, against the emulator.
type replayHarness struct {
	emu *emulator
	bin string
}

// deadLetterAttrs returns the attributes Pub/Sub adds to a message it
// dead-letters.
func deadLetterAttrs() map[string]string {
	return map[string]string{
		"CloudPubSubDeadLetterSourceDeliveryCount":       "100",
		"CloudPubSubDeadLetterSourceSubscription":        "orders-push",
		"CloudPubSubDeadLetterSourceSubscriptionProject": project,
		"CloudPubSubDeadLetterSourceTopicPublishTime":    "2026-01-02T03:04:05.678Z",
	}
}

// createTopicSub creates topic id and, unless sub is "", a pull
// subscription sub on it.
func (r *replayHarness) createTopicSub(t *testing.T, id, sub string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topic, err := r.emu.createTopic(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if sub == "" {
		return
	}
	_, err = r.emu.client.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name: fmt.Sprintf("projects/%s/subscriptions/%s", project, sub), Topic: topic, AckDeadlineSeconds: 10,
	})
	if err != nil {
		t.Fatalf("create subscription %s: %v", sub, err)
	}
}

// publishDeadLetters publishes three dead letters with distinct data
// (marked with tag) to topic id, and returns their data by message id.
func (r *replayHarness) publishDeadLetters(t *testing.T, id, tag string) map[string][]byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := r.emu.client.Publisher(id)
	defer p.Stop()
	sent := make(map[string][]byte)
	for i := range 3 {
		data := fmt.Appendf(nil, `{"device_id":"vr-%s%d","event":"session_start"}`, tag, i)
		attrs := deadLetterAttrs()
		attrs["origin"] = "headset"
		msgID, err := p.Publish(ctx, &pubsub.Message{Data: data, Attributes: attrs}).Get(ctx)
		if err != nil {
			t.Fatalf("publish to %s: %v", id, err)
		}
		sent[msgID] = data
	}
	return sent
}

// replayRun is the outcome of one run of cmd/replay.
type replayRun struct {
	code           int
	stdout, stderr string
}

// want fails t unless the run exited with code and its stderr contains
// text.
func (res replayRun) want(t *testing.T, code int, text string) {
	t.Helper()
	if res.code != code || !strings.Contains(res.stderr, text) {
		t.Errorf("replay exited %d, want %d with %q on stderr; stderr:\n%s", res.code, code, text, res.stderr)
	}
}

// start starts cmd/replay with args, the emulator's address and the
// project in its environment; it is killed when t ends.
func (r *replayHarness) start(t *testing.T, args ...string) *process {
	t.Helper()
	cmd := exec.Command(r.bin, args...)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
		"PUBSUB_EMULATOR_HOST=" + r.emu.addr,
		"GOOGLE_CLOUD_PROJECT=" + project,
	}
	p, err := startProcess("replay", cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.kill)
	return p
}

// wait waits, at most replayTimeout, for p to exit.
func (r *replayHarness) wait(t *testing.T, p *process) replayRun {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(replayTimeout):
		p.kill()
		t.Fatalf("replay still running after %v; stderr:\n%s", replayTimeout, p.stderr)
	}
	res := replayRun{stdout: p.stdout.String(), stderr: p.stderr.String()}
	t.Logf("replay %s:\n%s%s", strings.Join(p.cmd.Args[1:], " "), res.stdout, res.stderr)
	var exit *exec.ExitError
	if errors.As(p.err, &exit) {
		res.code = exit.ExitCode()
	} else if p.err != nil {
		t.Fatalf("replay: %v", p.err)
	}
	return res
}

// run runs cmd/replay with args to the end.
func (r *replayHarness) run(t *testing.T, args ...string) replayRun {
	t.Helper()
	return r.wait(t, r.start(t, args...))
}

// waitFor polls cond until it holds, failing t after settleTimeout.
func (r *replayHarness) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(settleTimeout); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after %v, still waiting for %s", settleTimeout, what)
		}
	}
}

// receive acks and returns the messages of subscription sub, once it has
// at least want of them and no other has arrived for quiet. It fails t if
// want have not arrived within settleTimeout.
func (r *replayHarness) receive(t *testing.T, sub string, want int, quiet time.Duration) []*pubsub.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	defer cancel()
	var (
		mu   sync.Mutex
		got  []*pubsub.Message
		last = time.Now()
	)
	go func() {
		for ctx.Err() == nil {
			time.Sleep(50 * time.Millisecond)
			mu.Lock()
			if len(got) >= want && time.Since(last) > quiet {
				cancel()
			}
			mu.Unlock()
		}
	}()
	err := r.emu.client.Subscriber(sub).Receive(ctx, func(_ context.Context, m *pubsub.Message) {
		m.Ack()
		mu.Lock()
		defer mu.Unlock()
		got, last = append(got, m), time.Now()
	})
	mu.Lock()
	defer mu.Unlock()
	if err != nil || len(got) < want {
		t.Fatalf("receive from %s: %d messages after %v, want %d (error %v)", sub, len(got), settleTimeout, want, err)
	}
	return got
}

// expectReplayed checks that subscription sub receives exactly the data of
// sent, once each, with the attribute origin=headset only and no ordering
// key.
func (r *replayHarness) expectReplayed(t *testing.T, sub string, sent map[string][]byte) {
	t.Helper()
	var want, got []string
	for _, data := range sent {
		want = append(want, string(data))
	}
	for _, m := range r.receive(t, sub, len(sent), 2*time.Second) {
		got = append(got, string(m.Data))
		if !maps.Equal(m.Attributes, map[string]string{"origin": "headset"}) || m.OrderingKey != "" {
			t.Errorf("replayed %s has attributes %v, ordering key %q; want origin=headset only, no key", m.Data, m.Attributes, m.OrderingKey)
		}
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("%s received %q, want %q once each", sub, got, want)
	}
}
