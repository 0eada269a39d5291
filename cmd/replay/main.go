// Command replay publishes the events of a Pub/Sub dead-letter subscription
// (<topic>-dead-letter-sub, which keeps them 31 days) to the main topic
// again, once the cause of their failure is fixed:
//
//	replay -project P -subscription device-events-dead-letter-sub -topic device-events [-limit N] [-idle 10s] [-dry-run]
//
// -project defaults to $GOOGLE_CLOUD_PROJECT; PUBSUB_EMULATOR_HOST points it
// to the emulator. Both the subscription and the topic must exist, and some
// subscription must read the topic: Pub/Sub drops what is published to a
// topic no subscription reads.
//
// Each dead letter becomes a new message with the same data and attributes,
// minus those Pub/Sub adds when it dead-letters a message (keys starting
// with CloudPubSubDeadLetter), and no ordering key. The dead letter is acked
// only once that publish succeeded, else nacked: it stays in the
// subscription, so none is lost (one whose ack is lost may be published
// twice). Within a run, a message nacked once is nacked again and ignored.
// Replay stops once no new message has arrived and no publish has finished
// for -idle (the first wait is 10 s longer, for the pull to connect), after
// -limit messages (0: no limit; failed ones count), or on SIGINT or
// SIGTERM, and finishes what is in flight. Messages left behind by a run
// that stopped early are replayed by the next, and so are those a dry run
// or a failed publish nacked, which Pub/Sub may hold back until an ack
// deadline passes: run it until it replays 0. If the cause is not fixed,
// replayed events come back:
// -limit bounds such a run. -dry-run replays nothing: it prints each dead
// letter to stdout as one JSON line (id, publish time, dead-letter
// attributes, data size, other attributes) and nacks it.
//
// The last line, on stderr, is (after "dry run: listed N, " in a dry run)
//
//	replayed N, failed M, from projects/P/subscriptions/S to projects/P/topics/T
//
// The exit status is 1 if a message failed or on a setup error (a missing
// flag, a subscription or topic not found), 2 for an unknown flag, else 0.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/api/iterator"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const (
	// deadLetterPrefix starts the keys of the attributes Pub/Sub adds to
	// a message it dead-letters.
	deadLetterPrefix = "CloudPubSubDeadLetter"
	// Bounds of the calls to Pub/Sub.
	setupTimeout   = 30 * time.Second
	publishTimeout = 60 * time.Second
	// startGrace is added to the first idle wait: the streaming pull
	// takes a moment to connect and deliver the first message.
	startGrace = 10 * time.Second
)

// replayer moves the dead letters of one subscription to one topic. Its
// handle method is safe for concurrent use.
type replayer struct {
	project, subscription, topic string // the flags
	limit                        int
	idle                         time.Duration
	dryRun                       bool

	client    *pubsub.Client
	sub       *pubsub.Subscriber
	pub       *pubsub.Publisher
	seen      sync.Map // message id → struct{}: nacked (or being handled) in this run
	taken     atomic.Int64
	replayed  atomic.Int64 // or, in a dry run, listed
	failed    atomic.Int64
	stdout    *log.Logger        // one line per call, safe for concurrent use
	stop      context.CancelFunc // stops receiving
	idleTimer *time.Timer
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("replay: ")
	r, err := parseFlags()
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := r.connect(ctx); err != nil {
		log.Fatal(err)
	}
	if err = r.run(ctx); err != nil {
		log.Print(err)
	}
	fmt.Fprintln(os.Stderr, r.summary())
	if err != nil || r.failed.Load() > 0 {
		os.Exit(1)
	}
}

// parseFlags returns a replayer configured by the command line, once it has
// checked that the required flags are set.
func parseFlags() (*replayer, error) {
	r := &replayer{stdout: log.New(os.Stdout, "", 0)}
	flag.StringVar(&r.project, "project", os.Getenv("GOOGLE_CLOUD_PROJECT"), "Google Cloud project (default $GOOGLE_CLOUD_PROJECT)")
	flag.StringVar(&r.subscription, "subscription", "", "dead-letter subscription id to read from, e.g. device-events-dead-letter-sub")
	flag.StringVar(&r.topic, "topic", "", "topic id to publish to, e.g. device-events")
	flag.IntVar(&r.limit, "limit", 0, "stop after this many messages; 0: no limit")
	flag.DurationVar(&r.idle, "idle", 10*time.Second, "stop once no new message has arrived for this long")
	flag.BoolVar(&r.dryRun, "dry-run", false, "print each message as a JSON line and nack it; replay nothing")
	flag.Parse()
	for _, f := range [][2]string{{"project", r.project}, {"subscription", r.subscription}, {"topic", r.topic}} {
		if f[1] == "" {
			return nil, fmt.Errorf("missing -%s (see -help)", f[0])
		}
	}
	if flag.NArg() > 0 || r.limit < 0 || r.idle <= 0 {
		return nil, fmt.Errorf("want no arguments, -limit >= 0 and -idle > 0; got %q, %d, %v", flag.Args(), r.limit, r.idle)
	}
	return r, nil
}

// connect creates the Pub/Sub client and checks that the subscription and
// the topic exist, and that the subscription does not read from the topic.
func (r *replayer) connect(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	var err error
	if r.client, err = pubsub.NewClient(ctx, r.project); err != nil {
		return fmt.Errorf("pubsub client: %w", err)
	}
	r.sub, r.pub = r.client.Subscriber(r.subscription), r.client.Publisher(r.topic)
	r.sub.ReceiveSettings.MaxOutstandingMessages = 100
	return r.check(ctx)
}

// check returns an error naming the subscription or the topic if it does
// not exist, if the subscription reads from the topic, or if no
// subscription reads the topic.
func (r *replayer) check(ctx context.Context) error {
	s, err := r.client.SubscriptionAdminClient.GetSubscription(ctx, &pubsubpb.GetSubscriptionRequest{Subscription: r.sub.String()})
	if err != nil {
		return describe("subscription", r.sub.String(), err)
	}
	if _, err := r.client.TopicAdminClient.GetTopic(ctx, &pubsubpb.GetTopicRequest{Topic: r.pub.String()}); err != nil {
		return describe("topic", r.pub.String(), err)
	}
	if s.GetTopic() == r.pub.String() {
		return fmt.Errorf("subscription %s reads from topic %s: replaying into it would loop", r.sub, r.pub)
	}
	// Pub/Sub accepts, and drops, what is published to a topic that no
	// subscription reads: the dead letters would be acked and gone.
	subs := r.client.TopicAdminClient.ListTopicSubscriptions(ctx, &pubsubpb.ListTopicSubscriptionsRequest{Topic: r.pub.String(), PageSize: 1})
	switch _, err := subs.Next(); {
	case errors.Is(err, iterator.Done):
		return fmt.Errorf("topic %s has no subscription: what is published to it would be dropped (is its function's trigger there?)", r.pub)
	case err != nil:
		return fmt.Errorf("list the subscriptions of topic %s: %w", r.pub, err)
	}
	return nil
}

// describe names the resource that a Get of kind name failed on.
func describe(kind, name string, err error) error {
	if status.Code(err) == codes.NotFound {
		return fmt.Errorf("%s %s not found", kind, name)
	}
	return fmt.Errorf("get %s %s: %w", kind, name, err)
}

// run receives and handles dead letters until the subscription has been
// idle for r.idle, r.limit messages are taken, or ctx is done. It
// returns once every message received is acked or nacked, and closes the
// client.
func (r *replayer) run(ctx context.Context) error {
	defer r.client.Close()
	defer r.pub.Stop()
	ctx, r.stop = context.WithCancel(ctx)
	defer r.stop()
	r.idleTimer = time.AfterFunc(r.idle+startGrace, r.stop)
	defer r.idleTimer.Stop()
	log.Printf("reading %s until idle for %v", r.sub, r.idle)
	if err := r.sub.Receive(ctx, r.handle); err != nil {
		return fmt.Errorf("receive from %s: %w", r.sub, err)
	}
	return nil
}

// handle replays (or, in a dry run, prints) the first delivery of each
// message in this run, and nacks the others.
func (r *replayer) handle(ctx context.Context, m *pubsub.Message) {
	if _, dup := r.seen.LoadOrStore(m.ID, struct{}{}); dup {
		m.Nack()
		return
	}
	n := r.taken.Add(1)
	if limit := int64(r.limit); limit > 0 && n >= limit {
		r.stop()
		if n > limit {
			m.Nack()
			return
		}
	}
	r.idleTimer.Reset(r.idle)
	if r.dryRun {
		r.print(m)
		m.Nack()
		return
	}
	// Finish the publish even once receiving stops (idle, limit, signal).
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
	defer cancel()
	kept, _ := split(m.Attributes)
	res := r.pub.Publish(ctx, &pubsub.Message{Data: m.Data, Attributes: kept})
	_, err := res.Get(ctx)
	r.idleTimer.Reset(r.idle) // not idle while publishes are slow
	if err != nil {
		log.Printf("message %s not replayed, left in %s: %v", m.ID, r.sub, err)
		r.failed.Add(1)
		m.Nack()
		return
	}
	r.replayed.Add(1)
	m.Ack()
	r.seen.Delete(m.ID) // only nacked ones need remembering: bounded memory
}

// split returns copies of attrs without and with only the dead-letter
// attributes.
func split(attrs map[string]string) (kept, deadLetter map[string]string) {
	kept, deadLetter = map[string]string{}, map[string]string{}
	for k, v := range attrs {
		if strings.HasPrefix(k, deadLetterPrefix) {
			deadLetter[k] = v
		} else {
			kept[k] = v
		}
	}
	return kept, deadLetter
}

// print writes m to stdout as one JSON line, without its data.
func (r *replayer) print(m *pubsub.Message) {
	kept, deadLetter := split(m.Attributes)
	b, _ := json.Marshal(map[string]any{ // cannot fail: strings, a time, an int
		"id": m.ID, "publish_time": m.PublishTime, "dead_letter": deadLetter, "size": len(m.Data), "attributes": kept,
	})
	r.stdout.Print(string(b))
	r.replayed.Add(1)
}

// summary is the last line replay prints.
func (r *replayer) summary() string {
	if r.dryRun {
		return fmt.Sprintf("dry run: listed %d, replayed 0, failed 0, from %s to %s", r.replayed.Load(), r.sub, r.pub)
	}
	return fmt.Sprintf("replayed %d, failed %d, from %s to %s", r.replayed.Load(), r.failed.Load(), r.sub, r.pub)
}
