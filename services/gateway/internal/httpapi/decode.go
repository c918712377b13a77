package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
)

// MaxBody bounds a request body; a basket of a few hundred lines is a few kilobytes.
const MaxBody = 1 << 20

// fieldError names the part of a request that is wrong, in the same dotted/indexed form the
// services use in their field violations ("lines[0].quantity").
type fieldError struct {
	Field string
	Why   string
}

func (e *fieldError) Error() string { return e.Field + ": " + e.Why }

// errTooLarge is returned for a body over MaxBody.
var errTooLarge = errors.New("request body is larger than 1 MiB")

// readBody reads the whole body, refusing more than MaxBody bytes. Reading it whole before
// decoding means an oversized body is always a 413, never a confusing syntax error halfway.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, errTooLarge
	}
	if err != nil {
		return nil, &fieldError{Field: "body", Why: "could not be read"}
	}
	return data, nil
}

// decodeStrict decodes exactly one JSON value from data into v, refusing unknown fields. at is
// the path of data inside the request ("" for the body, "lines[2]" for a line), so errors name
// the field the way a client wrote it.
func decodeStrict(data []byte, v any, at string) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, extra := dec.Token(); extra != io.EOF {
			return &fieldError{Field: orBody(at), Why: "must be a single JSON value"}
		}
		return nil
	}
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.Is(err, io.EOF) && at == "":
		return &fieldError{Field: "body", Why: "is required (a JSON object)"}
	case errors.As(err, &typeErr):
		return &fieldError{Field: join(at, typeErr.Field), Why: "must be " + kindName(typeErr.Type)}
	case errors.As(err, &syntaxErr):
		return &fieldError{Field: orBody(at), Why: fmt.Sprintf("is not valid JSON (at byte %d)", syntaxErr.Offset)}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &fieldError{Field: orBody(at), Why: "is not valid JSON (it ends too early)"}
	}
	// encoding/json reports unknown fields only as text: `json: unknown field "x"`.
	if name, ok := strings.CutPrefix(err.Error(), `json: unknown field "`); ok {
		return &fieldError{Field: join(at, strings.TrimSuffix(name, `"`)), Why: "is not a known field"}
	}
	return &fieldError{Field: orBody(at), Why: "is not valid JSON"}
}

func join(at, field string) string {
	switch {
	case at == "":
		return orBody(field)
	case field == "":
		return at
	default:
		return at + "." + field
	}
}

func orBody(at string) string {
	if at == "" {
		return "body"
	}
	return at
}

// kindName says what JSON a Go type expects.
func kindName(t reflect.Type) string {
	if t == reflect.TypeFor[json.RawMessage]() {
		return "a JSON value"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	default:
		return "of another type"
	}
}
