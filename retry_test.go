package bricklayer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"testing"
	"time"

	"go.podman.io/image/v5/docker"
)

func TestRetryable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("writing blob: %w", syscall.ECONNRESET), true},
		{fmt.Errorf("pinging: %w", &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}), true},
		{fmt.Errorf("reading: %w", io.ErrUnexpectedEOF), true},
		{fmt.Errorf("pushing: %w", docker.ErrTooManyRequests), true},
		{docker.UnexpectedHTTPStatusError{StatusCode: 503}, true},
		{docker.UnexpectedHTTPStatusError{StatusCode: 404}, false},
		{docker.ErrUnauthorizedForCredentials{Err: errors.New("denied")}, false},
		{fmt.Errorf("copying: %w", context.Canceled), false},
		{fmt.Errorf("copying: %w", context.DeadlineExceeded), false},
		{fmt.Errorf("writing: %w", syscall.ENOSPC), false},
		{errors.New("manifest invalid"), false},
	} {
		if got := retryable(tc.err); got != tc.want {
			t.Errorf("retryable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestWithRetries(t *testing.T) {
	ctx := context.Background()
	reset := fmt.Errorf("writing blob: %w", syscall.ECONNRESET)
	tries := 0
	v, err := withRetries(ctx, 3, time.Millisecond, "test", func() (int, error) {
		tries++
		if tries < 3 {
			return 0, reset
		}
		return 42, nil
	})
	if v != 42 || err != nil || tries != 3 {
		t.Errorf("passing failure: %d, %v after %d tries; want 42, nil after 3", v, err, tries)
	}

	tries = 0
	_, err = withRetries(ctx, 3, time.Millisecond, "test", func() (int, error) { tries++; return 0, syscall.ENOSPC })
	if tries != 1 || !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("lasting failure: %v after %d tries, want ENOSPC after 1", err, tries)
	}

	tries = 0
	_, err = withRetries(ctx, 2, time.Millisecond, "test", func() (int, error) { tries++; return 0, reset })
	if tries != 3 || !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("retries exhausted: %v after %d tries, want ECONNRESET after 3", err, tries)
	}

	// Cancelling ctx ends the wait at once.
	cctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	_, err = withRetries(cctx, 5, time.Hour, "test", func() (int, error) { return 0, reset })
	if elapsed := time.Since(start); elapsed > 5*time.Second || !errors.Is(err, context.Canceled) || !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("cancelled during the wait: %v after %s, want both errors at once", err, elapsed)
	}
}
