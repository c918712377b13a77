package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// FuzzDecodeBodies feeds arbitrary bytes to the strict decoder of every request body a page or
// client sends, and then of each part a body keeps raw to decode on its own (an order's or a
// confirmation's lines, a campaign's pack and target, a round's shortages, a courier's outcomes),
// under the name the handler gives it. Whatever arrives, the
// decoder must not panic, and a refusal must be a field error naming a field and why, since that
// is what the caller is shown (400 with "fields").
//
//	go test -run='^$' -fuzz='^FuzzDecodeBodies$' -fuzztime=60s ./internal/httpapi
func FuzzDecodeBodies(f *testing.F) {
	for _, seed := range []string{
		`{"request_id":"r-1","lines":[{"item_id":"masks","quantity":2}]}`,
		`{"request_id":"r-1","household_id":"haixin-3-2-302","channel":"PHONE","lines":[{"item_id":"pork","quantity":500}]}`,
		`{"request_id":"c-1","lines":[{"item_id":"cabbage","quantity":1560}]}`,
		`{"request_id":"u-1","current_price_fen":380,"ration_per_day":3000}`,
		`{"request_id":"a-1","delta":-500,"reason":"spoiled"}`,
		`{"request_id":"n-1","name":"84","pack":[{"item_id":"masks","quantity":1}],"target":{"buildings":["3"]}}`,
		`{"request_id":"k-1","outcomes":[{"parcel_id":"p","delivered":true}]}`, `{"shortages":[{"parcel_id":"p"}]}`,
		`{"request_id":"x","lines":[3]}`, `{"lines":{"item_id":1}}`, `{"quantity":1e400}`,
		`{"request_id":7}`, `{} {}`, `[1,2]`, `{"a":`, ``, `null`, `"\ud800"`,
	} {
		f.Add([]byte(seed))
	}
	bodies := []func() any{
		func() any { return &placeOrderBody{} }, func() any { return &cancelBody{} },
		func() any { return &confirmBody{} }, func() any { return &rejectBody{} },
		func() any { return &requestIDBody{} }, func() any { return &itemPatch{} },
		func() any { return &stockBody{} }, func() any { return &createCampaignBody{} },
		func() any { return &postNoticeBody{} }, func() any { return &checkInBody{} },
		func() any { return &reassignBody{} }, func() any { return &moveStopBody{} },
		func() any { return &completeBody{} }, func() any { return &pickUpBody{} },
		func() any { return &deliveredBody{} }, func() any { return &failedBody{} },
		func() any { return &codeSignInBody{} }, func() any { return &passwordSignInBody{} },
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, body := range bodies {
			v := body()
			err := decodeStrict(data, v, "")
			wantFieldError(t, fmt.Sprintf("%T", v), err, "")
			if err != nil {
				continue
			}
			var raws []json.RawMessage
			var name string
			var part func() any
			switch b := v.(type) {
			case *placeOrderBody:
				raws, name, part = b.Lines, "lines", func() any { return &lineBody{} }
			case *confirmBody:
				raws, name, part = b.Lines, "lines", func() any { return &confirmLineBody{} }
			case *createCampaignBody:
				raws, name, part = b.Pack, "pack", func() any { return &packLineBody{} }
				if len(b.Target) > 0 {
					wantFieldError(t, "target", decodeStrict(b.Target, &targetBody{}, "target"), "target")
				}
			case *checkInBody:
				raws, name, part = b.Shortages, "shortages", func() any { return &shortageBody{} }
			case *completeBody:
				raws, name, part = b.Outcomes, "outcomes", func() any { return &outcomeBody{} }
			}
			for i, raw := range raws {
				at := fmt.Sprintf("%s[%d]", name, i)
				wantFieldError(t, at, decodeStrict(raw, part(), at), at)
			}
		}
	})
}

// wantFieldError fails unless err is nil or a field error with a field (under prefix) and a reason.
func wantFieldError(t *testing.T, what string, err error, prefix string) {
	t.Helper()
	if err == nil {
		return
	}
	var fe *fieldError
	if !errors.As(err, &fe) || fe.Field == "" || fe.Why == "" || !strings.HasPrefix(fe.Field, prefix) {
		t.Fatalf("%s: refusal %#v (%v) does not name a field under %q and why", what, err, err, prefix)
	}
}
