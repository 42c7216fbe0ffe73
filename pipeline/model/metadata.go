package model

import "math"

// KV is one metadata entry, in file order. Value holds the Go form of the GGUF value:
// uint8…int64, float32, float64, bool, string, or a typed slice ([]string, []float32,
// []int32, []uint32, []uint8 …) for arrays; arrays of arrays become []any.
type KV struct {
	Key   string
	Value any
}

// Metadata is the key/value section of a model file. HuggingFace models get one too,
// synthesised from config.json, so everything downstream reads a single form.
type Metadata struct {
	kvs   []KV
	index map[string]int
}

// NewMetadata builds Metadata from entries; a later entry with the same key replaces
// an earlier one.
func NewMetadata(kvs ...KV) Metadata {
	m := Metadata{index: make(map[string]int, len(kvs))}
	for _, kv := range kvs {
		m.Set(kv.Key, kv.Value)
	}
	return m
}

// Set adds or replaces an entry.
func (m *Metadata) Set(key string, v any) {
	if m.index == nil {
		m.index = make(map[string]int)
	}
	if i, ok := m.index[key]; ok {
		m.kvs[i].Value = v
		return
	}
	m.index[key] = len(m.kvs)
	m.kvs = append(m.kvs, KV{key, v})
}

// All returns the entries in file order. The slice must not be modified.
func (m Metadata) All() []KV { return m.kvs }

// Len is the number of entries.
func (m Metadata) Len() int { return len(m.kvs) }

// Get returns the raw value of key.
func (m Metadata) Get(key string) (any, bool) {
	i, ok := m.index[key]
	if !ok {
		return nil, false
	}
	return m.kvs[i].Value, true
}

// String returns a string value.
func (m Metadata) String(key string) (string, bool) {
	v, _ := m.Get(key)
	s, ok := v.(string)
	return s, ok
}

// Bool returns a boolean value.
func (m Metadata) Bool(key string) (bool, bool) {
	v, _ := m.Get(key)
	b, ok := v.(bool)
	return b, ok
}

// Uint returns a non-negative integer value of any integer type. Writers disagree on
// integer widths (u32 vs i32 vs u64 for the same key), so readers should not care.
func (m Metadata) Uint(key string) (uint64, bool) {
	v, _ := m.Get(key)
	switch x := v.(type) {
	case uint8:
		return uint64(x), true
	case uint16:
		return uint64(x), true
	case uint32:
		return uint64(x), true
	case uint64:
		return x, true
	case int8:
		return uint64(x), x >= 0
	case int16:
		return uint64(x), x >= 0
	case int32:
		return uint64(x), x >= 0
	case int64:
		return uint64(x), x >= 0
	}
	return 0, false
}

// Int returns an integer value that fits in an int.
func (m Metadata) Int(key string) (int, bool) {
	u, ok := m.Uint(key)
	if !ok || u > math.MaxInt32 {
		return 0, false
	}
	return int(u), true
}

// Float returns a numeric value as float64, whatever its stored type.
func (m Metadata) Float(key string) (float64, bool) {
	v, _ := m.Get(key)
	switch x := v.(type) {
	case float32:
		return float64(x), true
	case float64:
		return x, true
	}
	if u, ok := m.Uint(key); ok {
		return float64(u), true
	}
	return 0, false
}

// Strings returns a string array.
func (m Metadata) Strings(key string) ([]string, bool) {
	v, _ := m.Get(key)
	s, ok := v.([]string)
	return s, ok
}

// Float32s returns a float array, converting float64 arrays.
func (m Metadata) Float32s(key string) ([]float32, bool) {
	v, _ := m.Get(key)
	switch x := v.(type) {
	case []float32:
		return x, true
	case []float64:
		out := make([]float32, len(x))
		for i, f := range x {
			out[i] = float32(f)
		}
		return out, true
	}
	return nil, false
}

// Int32s returns an integer array as int32s, converting other integer widths whose
// values fit.
func (m Metadata) Int32s(key string) ([]int32, bool) {
	v, _ := m.Get(key)
	conv := func(n int, at func(int) int64) ([]int32, bool) {
		out := make([]int32, n)
		for i := range out {
			x := at(i)
			if x < math.MinInt32 || x > math.MaxInt32 {
				return nil, false
			}
			out[i] = int32(x)
		}
		return out, true
	}
	switch x := v.(type) {
	case []int32:
		return x, true
	case []uint32:
		return conv(len(x), func(i int) int64 { return int64(x[i]) })
	case []int64:
		return conv(len(x), func(i int) int64 { return x[i] })
	case []uint64:
		return conv(len(x), func(i int) int64 {
			if x[i] > math.MaxInt64 {
				return math.MaxInt64
			}
			return int64(x[i])
		})
	case []int8:
		return conv(len(x), func(i int) int64 { return int64(x[i]) })
	case []uint8:
		return conv(len(x), func(i int) int64 { return int64(x[i]) })
	case []int16:
		return conv(len(x), func(i int) int64 { return int64(x[i]) })
	case []uint16:
		return conv(len(x), func(i int) int64 { return int64(x[i]) })
	}
	return nil, false
}
