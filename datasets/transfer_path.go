package datasets

import (
	"strings"
	"time"
)

// ExportOptions selects what ExportPath copies out of a store.
type ExportOptions struct {
	// Source keeps only the snapshots of this source URI ("" for all).
	Source string
	// From and To bound the snapshots' times, From <= Time < To (zero:
	// unbounded).
	From, To time.Time
	// Description is written into the header ("" for "exported from DB").
	Description string
	// Now is the header's creation time (zero: time.Now).
	Now time.Time
}

// ExportPath exports the store at db into a new dataset file at out (gzip
// if it ends in .gz): the header names the source (every source of the
// store, comma-separated, when o.Source is empty) and the description. An
// incomplete file is removed on error. It returns the number of snapshots
// and events written.
func ExportPath(db, out string, o ExportOptions) (snaps, events int, err error) {
	s, err := OpenReadOnly(db)
	if err != nil {
		return 0, 0, err
	}
	defer s.Close()
	srcs, err := s.Sources()
	if err != nil {
		return 0, 0, err
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	h := Header{Source: o.Source, Description: o.Description, Created: o.Now.UTC()}
	if h.Source == "" {
		h.Source = strings.Join(srcs, ",")
	}
	if h.Description == "" {
		h.Description = "exported from " + db
	}
	w, err := CreateFile(out, h)
	if err != nil {
		return 0, 0, err
	}
	n, e, err := Export(s, w, o.Source, o.From, o.To)
	if err != nil {
		w.Abort()
		return 0, 0, err
	}
	if err := w.Close(); err != nil {
		return 0, 0, err
	}
	return n, e, nil
}

// ImportPath imports the dataset file at path into s. It returns the number
// of snapshots and events stored, also on error.
func ImportPath(s *Store, path string) (snaps, events int, err error) {
	r, err := OpenFile(path)
	if err != nil {
		return 0, 0, err
	}
	defer r.Close()
	return Import(s, r)
}

// CheckPath opens the store at path read-only and runs its consistency
// check (VerifyPath); a damaged store gives ErrCorrupt.
func CheckPath(path string) error {
	_, err := VerifyPath(path)
	return err
}

// PrunePath deletes the snapshots of the store at path older than before
// and closes it. It returns how many were deleted.
func PrunePath(path string, before time.Time) (int, error) {
	s, err := Open(path)
	if err != nil {
		return 0, err
	}
	n, err := s.Prune(before)
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	return n, err
}
