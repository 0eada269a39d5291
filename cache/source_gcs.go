package cache

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"cloud.google.com/go/storage"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/api/iterator"
)

// gcsRetry bounds the storage client's retries of one request: without it
// the client retries a down GCS until the context ends, and a cold start
// would hold every request for the whole LoadTimeout instead of answering
// 5xx so that Pub/Sub redelivers later. The cache's own backoff covers
// longer outages.
var gcsRetry = []storage.RetryOption{
	storage.WithMaxAttempts(4),
	storage.WithBackoff(gax.Backoff{Initial: 200 * time.Millisecond, Max: 2 * time.Second, Multiplier: 2}),
}

// gcsStatTimeout bounds Stat, its retries included. A metadata request
// takes tens of milliseconds and gcsRetry's backoff at most 1.4 s; a GCS that
// accepts connections and never answers, or a network that drops them,
// would otherwise hold a cold start's requests for the whole LoadTimeout.
var gcsStatTimeout = 10 * time.Second

// gcsSource reads one Cloud Storage object.
type gcsSource struct {
	bkt            *storage.BucketHandle
	obj            *storage.ObjectHandle
	bucket, object string
}

var _ History = (*gcsSource)(nil)

// NewGCSSource returns a Source for the object gs://bucket/object. Stat is a
// metadata-only request (Attrs); Open reads exactly the version Stat
// reported, and fails with ErrVersionGone once that generation is replaced.
func NewGCSSource(client *storage.Client, bucket, object string) Source {
	bkt := client.Bucket(bucket).Retryer(gcsRetry...)
	return &gcsSource{bkt: bkt, obj: bkt.Object(object), bucket: bucket, object: object}
}

func (s *gcsSource) Stat(ctx context.Context) (Version, error) {
	ctx, cancel := context.WithTimeout(ctx, gcsStatTimeout)
	defer cancel()
	a, err := s.obj.Attrs(ctx)
	if err != nil {
		return Version{}, err
	}
	return Version{
		Generation:      a.Generation,
		Size:            a.Size,
		Name:            a.Name,
		ContentType:     a.ContentType,
		ContentEncoding: a.ContentEncoding,
	}, nil
}

// Open reads exactly generation v.Generation. A gzip-encoded object is read
// as stored (ReadCompressed), so the CRC32C check covers the stored bytes and
// the parser sees gzip. A client made with storage.WithJSONReads refuses
// ReadCompressed (googleapis/google-cloud-go#7786); Open then reads it
// decompressed by the HTTP transport instead.
func (s *gcsSource) Open(ctx context.Context, v Version) (io.ReadCloser, error) {
	obj := s.obj.Generation(v.Generation)
	r, err := obj.ReadCompressed(v.ContentEncoding == "gzip").NewReader(ctx)
	if err != nil && strings.Contains(err.Error(), "custom Accept-Encoding headers not allowed") {
		r, err = obj.NewReader(ctx)
	}
	if errors.Is(err, storage.ErrObjectNotExist) {
		return nil, fmt.Errorf("%w: %s generation %d: %w", ErrVersionGone, s, v.Generation, err)
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

// Older lists the object's noncurrent generations, which a bucket with
// object versioning keeps (gcloud storage buckets update --versioning),
// newest first. Without versioning there are none.
func (s *gcsSource) Older(ctx context.Context, v Version, n int) ([]Version, error) {
	ctx, cancel := context.WithTimeout(ctx, gcsStatTimeout)
	defer cancel()
	var older []Version
	it := s.bkt.Objects(ctx, &storage.Query{Prefix: s.object, Versions: true})
	for {
		a, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("list the versions of %s: %w", s, err)
		}
		if a.Name == s.object && a.Generation < v.Generation {
			older = append(older, Version{Generation: a.Generation, Size: a.Size, Name: a.Name,
				ContentType: a.ContentType, ContentEncoding: a.ContentEncoding})
		}
	}
	slices.SortFunc(older, func(a, b Version) int { return cmp.Compare(b.Generation, a.Generation) })
	return older[:min(n, len(older))], nil
}

func (s *gcsSource) String() string { return "gs://" + s.bucket + "/" + s.object }

// ParseGCSURI splits "gs://bucket/object/with/slashes" into its bucket and
// object name. ok is false when uri is not a gs:// URI naming both.
func ParseGCSURI(uri string) (bucket, object string, ok bool) {
	rest, ok := strings.CutPrefix(uri, "gs://")
	if !ok {
		return "", "", false
	}
	bucket, object, ok = strings.Cut(rest, "/")
	if !ok || bucket == "" || object == "" {
		return "", "", false
	}
	return bucket, object, true
}
