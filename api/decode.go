package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
)

// ErrTrailingData is returned by DecodeStrict for a body with more than
// one JSON value ({..}{..}).
var ErrTrailingData = errors.New("data after the JSON object")

// DecodeStrict decodes one JSON object from r into v, a pointer to a
// struct, refusing what encoding/json lets through: a body that is not an
// object (null, [], "x"), keys that are not the struct's json tags exactly
// (encoding/json matches {"Mode":..} to `json:"mode"`; here it is an
// unknown field), a key given twice, unknown keys, and anything but
// whitespace after the object (ErrTrailingData).
func DecodeStrict(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return err
	}
	if err := dec.Decode(&json.RawMessage{}); !errors.Is(err, io.EOF) {
		if err == nil {
			err = ErrTrailingData
		}
		return fmt.Errorf("after the JSON object: %w", err)
	}
	if err := checkKeys(raw, jsonNames(v)); err != nil {
		return err
	}
	sd := json.NewDecoder(bytes.NewReader(raw))
	sd.DisallowUnknownFields()
	return sd.Decode(v)
}

// checkKeys checks that raw is a JSON object whose keys are all in names
// (exact case), each at most once.
func checkKeys(raw json.RawMessage, names map[string]bool) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok != json.Delim('{') {
		return fmt.Errorf("want a JSON object, got %s", strings.TrimSpace(string(raw[:min(len(raw), 40)])))
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		switch {
		case !names[key]:
			return fmt.Errorf("json: unknown field %q (keys are case-sensitive)", key)
		case seen[key]:
			return fmt.Errorf("json: field %q given twice", key)
		}
		seen[key] = true
		if err := dec.Decode(&json.RawMessage{}); err != nil {
			return err
		}
	}
	return nil
}

// jsonNames are the JSON keys of the struct v points to: each exported
// field's json tag name (the field name when the tag has none). v is one
// of this package's flat request types.
func jsonNames(v any) map[string]bool {
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	names := map[string]bool{}
	if t.Kind() != reflect.Struct {
		return names
	}
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		names[name] = true
	}
	return names
}
