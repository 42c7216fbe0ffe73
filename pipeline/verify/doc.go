// Package verify checks that volunteers compute what they claim.
package verify
