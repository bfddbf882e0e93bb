package config

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// ReadToken reads the API bearer token from path: at least 16 characters,
// surrounding white space ignored.
func ReadToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read token file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < 16 {
		return "", fmt.Errorf("token file %s: token must be at least 16 characters", path)
	}
	return tok, nil
}

// EnsureToken reads the token at path, or, when the file does not exist,
// creates it with a random 32-byte hex token and mode 0600 (created is then
// true). An empty path gives "" (every mutation refused).
func EnsureToken(path string) (tok string, created bool, err error) {
	if path == "" {
		return "", false, nil
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return "", false, fmt.Errorf("create token file %s: %w", path, err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return "", false, fmt.Errorf("create token file: %w", err)
		}
		_, werr := f.WriteString(hex.EncodeToString(b) + "\n")
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			os.Remove(path)
			return "", false, fmt.Errorf("create token file %s: %w", path, werr)
		}
		created = true
	}
	tok, err = ReadToken(path)
	return tok, created, err
}
