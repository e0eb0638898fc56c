package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"staple/certs"
)

// maxReplyBody caps what the client reads from the service: the entries of a large cache fit many times.
const maxReplyBody = 64 << 20

// Client talks to a running service over its admin socket. It implements Backend, so the CLI serves the same
// commands from a live service or from the database.
type Client struct {
	socket string
	http   *http.Client
}

// NewClient returns a client for the socket at path. Requests that cannot connect fail with ErrNoService.
func NewClient(path string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		MaxIdleConns:    2,
		IdleConnTimeout: 10 * time.Second,
	}
	// Refreshing every certificate waits for every fetch: allow minutes, not seconds. The engine bounds its
	// fetches by FetchTimeout itself, and answers before this ends, as it does with no service.
	return &Client{socket: path, http: &http.Client{Transport: tr, Timeout: FetchTimeout + 30*time.Second}}
}

// Ping reports whether a service answers on the socket.
func (c *Client) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err := c.Stats(ctx)
	return err
}

func (c *Client) Entries(ctx context.Context) ([]Entry, error) {
	var es []Entry
	return es, c.do(ctx, "GET", "/v1/entries", nil, &es)
}

func (c *Client) Entry(ctx context.Context, ref certs.KeyRef) (Detail, error) {
	var d Detail
	return d, c.do(ctx, "GET", "/v1/entries/"+ref.String(), nil, &d)
}

func (c *Client) Refresh(ctx context.Context, ref *certs.KeyRef) ([]Entry, error) {
	path := "/v1/refresh"
	if ref != nil {
		path = "/v1/entries/" + ref.String() + "/refresh"
	}
	return c.fetched(ctx, "POST", path)
}

// fetched makes a request that answers with the entries after their fetches, which come with the error
// when a fetch failed.
func (c *Client) fetched(ctx context.Context, method, path string) ([]Entry, error) {
	var es []Entry
	err := c.do(ctx, method, path, nil, &es)
	var re *RemoteError
	if errors.As(err, &re) {
		es = re.Entries
	}
	return es, err
}

func (c *Client) Remove(ctx context.Context, ref certs.KeyRef) ([]Entry, error) {
	return c.fetched(ctx, "DELETE", "/v1/entries/"+ref.String())
}

func (c *Client) Import(ctx context.Context, req ImportRequest) (Entry, error) {
	var e Entry
	return e, c.do(ctx, "POST", "/v1/import", req, &e)
}

func (c *Client) Stats(ctx context.Context) (Stats, error) {
	var s Stats
	return s, c.do(ctx, "GET", "/v1/stats", nil, &s)
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://staple"+path, body)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ne *net.OpError
		if errors.As(err, &ne) && ne.Op == "dial" {
			return fmt.Errorf("%w (%s): %v", ErrNoService, c.socket, ne.Err)
		}
		return fmt.Errorf("admin: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxReplyBody))
	if err != nil {
		return fmt.Errorf("admin: reading the reply: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var ae apiError
		json.Unmarshal(data, &ae)
		msg := strings.TrimSpace(ae.Error)
		if msg == "" {
			msg = resp.Status
		}
		return &RemoteError{Code: resp.StatusCode, Msg: msg, Entries: ae.Entries}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("admin: malformed reply: %w", err)
		}
	}
	return nil
}

// RemoteError is an error reply of the service. It unwraps to the sentinel its status code stands for, so
// errors.Is(err, ErrNotFound) holds on both sides of the socket.
type RemoteError struct {
	Code int
	Msg  string
	// Entries are the entries a refresh whose fetches failed returned with its error.
	Entries []Entry
}

func (e *RemoteError) Error() string { return e.Msg }

func (e *RemoteError) Unwrap() error {
	switch e.Code {
	case http.StatusNotFound:
		return ErrNotFound
	case http.StatusConflict:
		return ErrAmbiguous
	case http.StatusBadRequest:
		return ErrBadInput
	case http.StatusMethodNotAllowed:
		return ErrReadOnly
	}
	return nil
}
