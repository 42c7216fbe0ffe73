package api

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
)

// LoadKeys reads an API keys file: one key per line; blank lines and lines
// starting with # are ignored, as is space around a key. A file without any
// key is an error, so a typo cannot open the API to everyone.
func LoadKeys(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("API keys: %w", err)
	}
	defer f.Close()
	var keys []string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.ContainsAny(line, " \t") {
			return nil, fmt.Errorf("API keys %s line %d: a key has no spaces", path, n)
		}
		keys = append(keys, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("API keys %s: %w", path, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("API keys %s: no key in the file", path)
	}
	return keys, nil
}

// ErrExposed refuses an API listening beyond loopback without keys.
var ErrExposed = errors.New("the API listens beyond loopback without API keys")

// CheckExposure refuses to serve the API at addr (host:port) without keys
// unless every address it binds is loopback: anyone who can reach it could
// spend this node's credits.
func CheckExposure(addr string, haveKeys bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("API address %q: %w", addr, err)
	}
	if haveKeys || isLoopback(host) {
		return nil
	}
	return fmt.Errorf("%w: %s; give --api-keys FILE, or listen on 127.0.0.1", ErrExposed, addr)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
