package docker

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzV2ImageRoundTrip: whatever JSON decodes into a V2Image encodes to
// bytes that decode to the same value and encode to the same bytes again,
// so a config read and written by bricklayer is stable.
func FuzzV2ImageRoundTrip(f *testing.F) {
	f.Add([]byte(`{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"],"Cmd":["/bin/sh"],"ExposedPorts":{"80/tcp":{}},"Healthcheck":{"Test":["CMD","true"],"Interval":1000000000}},"rootfs":{"type":"layers","diff_ids":["sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"]},"history":[{"created":"2020-01-02T03:04:05Z","created_by":"x","empty_layer":true}]}`))
	f.Add([]byte(`{"container_config":{"Labels":{"a":"b"},"OnBuild":["RUN x"],"Shell":["/bin/bash","-c"],"StopSignal":"SIGTERM","Volumes":{"/data":{}}},"created":"2024-02-29T23:59:59.123456789+01:00","author":"\u00e9"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"os.version":"10.0","os.features":["win32k"],"variant":"v8","id":"x","parent":"y","comment":"c","docker_version":"1"}`))
	f.Fuzz(checkRoundTrip[V2Image])
}

// FuzzV2S2ManifestRoundTrip is FuzzV2ImageRoundTrip for manifests.
func FuzzV2S2ManifestRoundTrip(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":7023,"digest":"sha256:b5b2b2c507a0944348e0303114d8d93aaaa081732b86451d9bce1f432a537bc7"},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":32654,"digest":"sha256:e692418e4cbaf90ca69d05a66403747baa33ee08806650b51fab815ad7fc331f","urls":["https://x"]}]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(checkRoundTrip[V2S2Manifest])
}

// checkRoundTrip checks that data, if it decodes into a T that encodes,
// encodes to bytes that decode into a T that encodes to the same bytes.
func checkRoundTrip[T any](t *testing.T, data []byte) {
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		return
	}
	first, err := json.Marshal(&v)
	if err != nil {
		// A time.Time out of JSON's range, for one, decodes but does not
		// encode.
		return
	}
	var again T
	if err := json.Unmarshal(first, &again); err != nil {
		t.Fatalf("decoding what was encoded: %v\n%s", err, first)
	}
	second, err := json.Marshal(&again)
	if err != nil {
		t.Fatalf("encoding again: %v", err)
	}
	if !bytes.Equal(first, second) {
		t.Fatalf("round trip not stable:\n%s\n%s", first, second)
	}
}
