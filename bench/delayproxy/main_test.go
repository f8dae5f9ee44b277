package main

import (
	"slices"
	"testing"
)

func TestParsePorts(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
	}{
		{"2121", []int{2121}},
		{"2121,30000-30002", []int{2121, 30000, 30001, 30002}},
		{" 21 , 40-40 ", []int{21, 40}},
		{"", nil},
		{"0", nil},
		{"70000", nil},
		{"30-20", nil},
		{"1-x", nil},
	} {
		got, err := parsePorts(tc.in)
		if tc.want == nil {
			if err == nil {
				t.Errorf("parsePorts(%q) = %v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("parsePorts(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		bad  bool
	}{
		{"0", 0, false},
		{"4MiB", 4 << 20, false},
		{"256KiB", 256 << 10, false},
		{"1.5M", 3 << 19, false},
		{"10MB", 10_000_000, false},
		{"123", 123, false},
		{"64 KiB", 64 << 10, false},
		{"-1", 0, true},
		{"MiB", 0, true},
		{"4XB", 0, true},
	} {
		got, err := parseSize(tc.in)
		if tc.bad != (err != nil) || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d (error %v)", tc.in, got, err, tc.want, tc.bad)
		}
	}
}
