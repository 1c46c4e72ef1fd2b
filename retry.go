package bricklayer

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"go.podman.io/image/v5/docker"
)

// defaultRetryDelay is the wait between tries when CommitOptions.RetryDelay
// is 0.
const defaultRetryDelay = 2 * time.Second

// withRetries calls try once, then again while it fails with an error that
// may pass (see [retryable]) and fewer than count retries were made, waiting
// delay (0: [defaultRetryDelay]) before each. It stops waiting when ctx is
// done, and returns the last error.
func withRetries[T any](ctx context.Context, count int, delay time.Duration, what string, try func() (T, error)) (T, error) {
	if delay == 0 {
		delay = defaultRetryDelay
	}
	for attempt := 0; ; attempt++ {
		v, err := try()
		if err == nil || attempt >= count || !retryable(err) || ctx.Err() != nil {
			if err != nil && attempt > 0 {
				err = fmt.Errorf("%w (after %d tries)", err, attempt+1)
			}
			return v, err
		}
		logrus.Warnf("%s failed, retrying in %s (%d of %d): %v", what, delay, attempt+1, count, err)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return v, fmt.Errorf("%w (retry cancelled: %w)", err, ctx.Err())
		case <-t.C:
		}
	}
}

// retryable reports errors that another try may not meet: a network
// failure (refused, reset or broken connection, timeout, a response cut
// short) or a registry that is overloaded or failing (HTTP 429 or 5xx).
// Cancellation, refused credentials, bad certificates and local failures
// (a full disk, a missing file) are not.
func retryable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var (
		unauthorized docker.ErrUnauthorizedForCredentials
		status       docker.UnexpectedHTTPStatusError
		unknownCA    x509.UnknownAuthorityError
		badCert      x509.CertificateInvalidError
		badHost      x509.HostnameError
		notTLS       tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &unauthorized), errors.As(err, &unknownCA), errors.As(err, &badCert),
		errors.As(err, &badHost), errors.As(err, &notTLS):
		return false
	case errors.Is(err, docker.ErrTooManyRequests):
		return true
	case errors.As(err, &status):
		return status.StatusCode == http.StatusTooManyRequests || status.StatusCode >= 500
	}
	for _, errno := range []syscall.Errno{syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED,
		syscall.EPIPE, syscall.ETIMEDOUT, syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.ENETDOWN} {
		if errors.Is(err, errno) {
			return true
		}
	}
	// Not any net.Error: syscall.Errno is one, ENOSPC included.
	var opErr *net.OpError
	var netErr net.Error
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &opErr) || (errors.As(err, &netErr) && netErr.Timeout())
}
