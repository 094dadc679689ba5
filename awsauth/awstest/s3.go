package awstest

// S3 PutObject, as the S3 REST API speaks it: PUT /<bucket>/<key>
// (path-style) or PUT /<key> on <bucket>.<host> (virtual-hosted), the body
// as is or aws-chunked with trailing checksums, x-amz-content-sha256 and
// x-amz-checksum-* checked, answers with an ETag, errors as S3's XML.

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	b64 "encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// OpPutObject is S3's PutObject, for Inject and Call.Action.
const OpPutObject = "PutObject"

// ServiceS3 is recorded in Call.Service.
const ServiceS3 = "s3"

// Object is an object stored in the simulator.
type Object struct {
	Bucket      string
	Key         string
	Body        []byte
	ContentType string
	ETag        string
	Modified    time.Time
}

// AddBucket creates an (empty) bucket; PutObject into a bucket that does
// not exist answers NoSuchBucket.
func (s *Server) AddBucket(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.buckets == nil {
		s.buckets = map[string]map[string]*Object{}
	}
	if s.buckets[name] == nil {
		s.buckets[name] = map[string]*Object{}
	}
}

// AllowBucket lets principal (a role ARN or a user's access key id) put
// objects in bucket ("*": every bucket). Nobody may write a bucket they are
// not allowed.
func (s *Server) AllowBucket(principal, bucket string) { s.AllowSecret(principal, "s3:"+bucket) }

// Objects returns copies of the objects in bucket, in key order.
func (s *Server) Objects(bucket string) []Object {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Object
	for _, o := range s.buckets[bucket] {
		c := *o
		c.Body = slices.Clone(o.Body)
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Object) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// DeleteObjects empties bucket (an attacker wiping the export, say).
func (s *Server) DeleteObjects(bucket string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.buckets[bucket] != nil {
		clear(s.buckets[bucket])
	}
}

// scopeService returns the service of the SigV4 credential scope:
// Credential=AKID/20250101/us-east-1/<service>/aws4_request.
func scopeService(r *http.Request) string {
	_, after, ok := strings.Cut(r.Header.Get("Authorization"), "Credential=")
	if !ok {
		return ""
	}
	parts := strings.Split(strings.SplitN(after, ",", 2)[0], "/")
	if len(parts) < 5 {
		return ""
	}
	return parts[3]
}

type s3Error struct {
	XMLName   xml.Name `xml:"Error"`
	Code      string   `xml:"Code"`
	Message   string   `xml:"Message"`
	Resource  string   `xml:"Resource,omitempty"`
	RequestID string   `xml:"RequestId"`
}

// bucketAndKey splits the request into bucket and key, path-style or
// virtual-hosted.
func (s *Server) bucketAndKey(r *http.Request) (string, string) {
	host := r.Host
	own := strings.TrimPrefix(s.srv.URL, "http://")
	if b, ok := strings.CutSuffix(host, "."+own); ok && b != "" {
		return b, strings.TrimPrefix(r.URL.Path, "/")
	}
	p := strings.TrimPrefix(r.URL.Path, "/")
	b, k, _ := strings.Cut(p, "/")
	return b, k
}

func (s *Server) serveS3(w http.ResponseWriter, r *http.Request) {
	call := Call{Service: ServiceS3, AccessKeyID: callerKey(r), Caller: callerKey(r)}
	reqID := strings.ReplaceAll(uuid(), "-", "")[:16]
	w.Header().Set("x-amz-request-id", reqID)
	w.Header().Set("x-amz-id-2", b64.StdEncoding.EncodeToString([]byte(reqID)))
	fail := func(status int, code, msg, resource string) {
		call.Err = code
		b, _ := xml.Marshal(s3Error{Code: code, Message: msg, Resource: resource, RequestID: reqID})
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, xml.Header)
		_, _ = w.Write(b)
		s.record(call)
	}
	bucket, key := s.bucketAndKey(r)
	if r.Method != http.MethodPut || bucket == "" || key == "" || r.URL.Query().Has("uploadId") || r.Header.Get("x-amz-copy-source") != "" {
		call.Action = r.Method
		fail(http.StatusNotImplemented, "NotImplemented", "This simulator answers only PutObject (PUT /<bucket>/<key>)", r.URL.Path)
		return
	}
	call.Action = OpPutObject
	call.SecretID = bucket + "/" + key
	body, err := readS3Body(r)
	if err != nil {
		fail(http.StatusBadRequest, "IncompleteBody", err.Error(), "/"+bucket+"/"+key)
		return
	}
	p, aerr, kind := s.admit(r, &call)
	switch {
	case kind == "refuse":
		fail(http.StatusForbidden, "AccessDenied", "Access Denied", "/"+bucket+"/"+key)
		return
	case kind == "5xx":
		fail(http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate.", "")
		return
	case aerr != nil:
		code := aerr.code
		if code == "MissingAuthenticationToken" {
			code = "AccessDenied"
		}
		fail(http.StatusForbidden, code, aerr.msg, "")
		return
	}
	if code, msg := checkS3Digests(r, body); code != "" {
		fail(http.StatusBadRequest, code, msg, "/"+bucket+"/"+key)
		return
	}
	s.mu.Lock()
	objs, exists := s.buckets[bucket]
	allowed := s.allowedLocked(p, "s3:"+bucket, "s3:*")
	s.mu.Unlock()
	switch {
	case !exists:
		fail(http.StatusNotFound, "NoSuchBucket", "The specified bucket does not exist", bucket)
		return
	case !allowed:
		fail(http.StatusForbidden, "AccessDenied", "Access Denied", "/"+bucket+"/"+key)
		return
	}
	sum := md5.Sum(body)
	etag := `"` + hex.EncodeToString(sum[:]) + `"`
	s.mu.Lock()
	if old := objs[key]; old != nil && r.Header.Get("If-None-Match") == "*" {
		s.mu.Unlock()
		fail(http.StatusPreconditionFailed, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold", "/"+bucket+"/"+key)
		return
	}
	objs[key] = &Object{Bucket: bucket, Key: key, Body: body, ContentType: r.Header.Get("Content-Type"), ETag: etag, Modified: s.now()}
	s.mu.Unlock()
	w.Header().Set("ETag", etag)
	for _, h := range []string{"x-amz-checksum-crc32", "x-amz-checksum-crc32c", "x-amz-checksum-sha256"} {
		if v := r.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(http.StatusOK)
	s.record(call)
}

// readS3Body reads the payload, decoding aws-chunked encoding (chunks of
// "<hex size>[;chunk-signature=...]\r\n<data>\r\n", a zero chunk, then
// trailer headers such as x-amz-checksum-crc32, which are copied into the
// request's headers).
func readS3Body(r *http.Request) ([]byte, error) {
	if !strings.Contains(r.Header.Get("Content-Encoding"), "aws-chunked") {
		return io.ReadAll(io.LimitReader(r.Body, 64<<20))
	}
	br := bufio.NewReader(io.LimitReader(r.Body, 64<<20))
	var out []byte
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return nil, fmt.Errorf("aws-chunked body: chunk header: %w", err)
		}
		sizeHex, _, _ := strings.Cut(strings.TrimSpace(line), ";")
		n, err := strconv.ParseInt(sizeHex, 16, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("aws-chunked body: bad chunk size %q", sizeHex)
		}
		if n == 0 {
			break
		}
		chunk := make([]byte, n)
		if _, err := io.ReadFull(br, chunk); err != nil {
			return nil, fmt.Errorf("aws-chunked body: chunk: %w", err)
		}
		out = append(out, chunk...)
		if crlf, err := br.ReadString('\n'); err != nil || strings.TrimSpace(crlf) != "" {
			return nil, errors.New("aws-chunked body: chunk not followed by CRLF")
		}
	}
	for {
		line, err := br.ReadString('\n')
		line = strings.TrimSpace(line)
		if k, v, ok := strings.Cut(line, ":"); ok {
			r.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
		}
		if err != nil || line == "" {
			break
		}
	}
	if d := r.Header.Get("X-Amz-Decoded-Content-Length"); d != "" && d != strconv.Itoa(len(out)) {
		return nil, fmt.Errorf("aws-chunked body: %d bytes decoded, x-amz-decoded-content-length says %s", len(out), d)
	}
	return out, nil
}

// checkS3Digests checks the payload hash and checksums the client sent.
func checkS3Digests(r *http.Request, body []byte) (code, msg string) {
	if h := r.Header.Get("X-Amz-Content-Sha256"); h != "" && !strings.HasPrefix(h, "UNSIGNED") && !strings.HasPrefix(h, "STREAMING") {
		sum := sha256.Sum256(body)
		if hex.EncodeToString(sum[:]) != h {
			return "XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match what was computed."
		}
	}
	if m := r.Header.Get("Content-MD5"); m != "" {
		sum := md5.Sum(body)
		if b64.StdEncoding.EncodeToString(sum[:]) != m {
			return "BadDigest", "The Content-MD5 you specified did not match what we received."
		}
	}
	checks := []struct {
		header string
		h      func() hash.Hash
	}{
		{"x-amz-checksum-crc32", func() hash.Hash { return crc32.NewIEEE() }},
		{"x-amz-checksum-crc32c", func() hash.Hash { return crc32.New(crc32.MakeTable(crc32.Castagnoli)) }},
		{"x-amz-checksum-sha256", sha256.New},
	}
	for _, c := range checks {
		want := r.Header.Get(c.header)
		if want == "" {
			continue
		}
		h := c.h()
		h.Write(body)
		if got := b64.StdEncoding.EncodeToString(h.Sum(nil)); !bytes.Equal([]byte(got), []byte(want)) {
			return "BadDigest", fmt.Sprintf("The %s you specified did not match the calculated checksum.", strings.TrimPrefix(c.header, "x-amz-checksum-"))
		}
	}
	return "", ""
}
