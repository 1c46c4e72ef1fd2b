package bricklayer

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"

	digest "github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"
	"go.podman.io/storage"
)

// This file keeps, in a container's directory, a record of what commits
// into the store wrote from the container's layers, so that a commit of an
// unchanged container can find its layer without writing it again (see
// exportIntoStore).

// storeRecordFile, in a container's directory, records the layers that
// commits into the store wrote from the container's layers.
const storeRecordFile = "bricklayer-store-layers.json"

// storeRecord is the content of storeRecordFile. It is only a hint: when it
// is missing, unreadable or out of date, a commit writes its layers in one
// pass.
type storeRecord struct {
	Layers []storeRecordEntry `json:"layers"`
}

// storeRecordEntry says that store layer Layer, with diffID DiffID, was
// written from the container's layer Source on top of store layer Parent.
type storeRecordEntry struct {
	Source string        `json:"source"`
	Parent string        `json:"parent"`
	Layer  string        `json:"layer"`
	DiffID digest.Digest `json:"diff_id"`
}

func readStoreRecord(ctrDir string) *storeRecord {
	rec := &storeRecord{}
	if ctrDir == "" {
		return rec
	}
	data, err := os.ReadFile(filepath.Join(ctrDir, storeRecordFile))
	if err == nil {
		err = json.Unmarshal(data, rec)
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		logrus.Debugf("ignoring the record of earlier commits in %s: %v", ctrDir, err)
		return &storeRecord{}
	}
	return rec
}

// holds says whether an earlier commit wrote layer source on parent, and
// the store still holds what it wrote.
func (r *storeRecord) holds(store storage.Store, source, parent string) bool {
	for _, e := range r.Layers {
		if e.Source == source && e.Parent == parent {
			l, err := store.Layer(e.Layer)
			return err == nil && l.Parent == parent && l.UncompressedDigest == e.DiffID
		}
	}
	return false
}

// set records e, replacing the entry for the same source layer.
func (r *storeRecord) set(e storeRecordEntry) {
	r.Layers = slices.DeleteFunc(r.Layers, func(o storeRecordEntry) bool { return o.Source == e.Source })
	r.Layers = append(r.Layers, e)
}

// write saves the record in ctrDir atomically. A record that cannot be
// written only costs a later commit of an unchanged container some time.
func (r *storeRecord) write(ctrDir string) {
	if ctrDir == "" {
		return
	}
	if err := writeJSONAtomic(filepath.Join(ctrDir, storeRecordFile), r); err != nil {
		logrus.Debugf("recording the layers written into the store: %v", err)
	}
}
