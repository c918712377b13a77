package app_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/auth"
	"github.com/doorstep/doorstep/pkg/testkit"
	"github.com/doorstep/doorstep/services/dispatch/app"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	dispatchv1 "github.com/doorstep/doorstep/proto/gen/doorstep/dispatch/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
)

// Every RPC against every kind of caller, on haixin's objects. Staff of another compound learn
// nothing of haixin: its site plan, couriers, settings and rounds are NOT_FOUND to them, worded
// as for a compound or round that does not exist.
func TestWhoMayCallWhat(t *testing.T) {
	h := start(t, at("2026-03-02", "08:00"))
	h.sitePlan(t)
	p := h.orders.ready("2", "1", 3) // building 2: courier 02's alone
	h.checkIn(t, "in", p)
	const tomorrow = "haixin-2026-03-03-am"
	h.round(t, "2026-03-03", tomorrow)
	h.clock.Set(at("2026-03-02", "09:10"))
	h.plan(t, "plan", am)

	// Each RPC as the identity in ctx, with a request id of its own; every call succeeds again and
	// again when allowed (retries, idempotent updates, moves to where the stop is already).
	type call func(ctx context.Context, requestID string) error
	rpcs := []struct {
		name string
		call call
	}{
		{"ListBuildings", func(ctx context.Context, _ string) error {
			_, err := h.client.ListBuildings(ctx, &dispatchv1.ListBuildingsRequest{Compound: "haixin"})
			return err
		}},
		{"UpsertBuilding", func(ctx context.Context, id string) error {
			_, err := h.client.UpsertBuilding(ctx, &dispatchv1.UpsertBuildingRequest{RequestId: id, Building: &dispatchv1.Building{
				Compound: "haixin", Building: "2", Units: []string{"1"}, Floors: 6, DistanceM: 120}})
			return err
		}},
		{"UpsertCourier", func(ctx context.Context, id string) error {
			_, err := h.client.UpsertCourier(ctx, &dispatchv1.UpsertCourierRequest{RequestId: id, Courier: &dispatchv1.Courier{
				CourierId: "haixin-courier-03", Compound: "haixin", Name: "Off Today", MaxParcels: 6, MaxGrams: 25000}})
			return err
		}},
		{"UpdateCompoundSettings", func(ctx context.Context, id string) error {
			_, err := h.client.UpdateCompoundSettings(ctx, &dispatchv1.UpdateCompoundSettingsRequest{RequestId: id,
				Settings: &dispatchv1.CompoundSettings{Compound: "haixin", Slots: []*dispatchv1.RoundSlot{
					{Slot: "am", Cutoff: "09:00", Departs: "09:30"}, {Slot: "pm", Cutoff: "15:00", Departs: "15:30"}}}})
			return err
		}},
		{"ListCouriers", func(ctx context.Context, _ string) error {
			_, err := h.client.ListCouriers(ctx, &dispatchv1.ListCouriersRequest{Compound: "haixin"})
			return err
		}},
		{"GetCompoundSettings", func(ctx context.Context, _ string) error {
			_, err := h.client.GetCompoundSettings(ctx, &dispatchv1.GetCompoundSettingsRequest{Compound: "haixin"})
			return err
		}},
		{"ListRounds", func(ctx context.Context, _ string) error {
			_, err := h.client.ListRounds(ctx, &dispatchv1.ListRoundsRequest{Compound: "haixin"})
			return err
		}},
		{"ListRoutes", func(ctx context.Context, _ string) error {
			_, err := h.client.ListRoutes(ctx, &dispatchv1.ListRoutesRequest{RoundId: am})
			return err
		}},
		{"CheckInParcels", func(ctx context.Context, id string) error {
			_, err := h.client.CheckInParcels(ctx, &dispatchv1.CheckInParcelsRequest{RequestId: id, Compound: "haixin",
				ParcelIds: []string{p.GetParcelId()}})
			return err
		}},
		{"PlanRound", func(ctx context.Context, id string) error {
			_, err := h.client.PlanRound(ctx, &dispatchv1.PlanRoundRequest{RequestId: id, RoundId: am})
			return err
		}},
		{"ReplanRound", func(ctx context.Context, id string) error {
			_, err := h.client.ReplanRound(ctx, &dispatchv1.ReplanRoundRequest{RequestId: id, RoundId: am})
			return err
		}},
		{"CloseRound", func(ctx context.Context, id string) error {
			_, err := h.client.CloseRound(ctx, &dispatchv1.CloseRoundRequest{RequestId: id, RoundId: tomorrow})
			return err
		}},
		{"SetCourierDuty", func(ctx context.Context, id string) error {
			_, err := h.client.SetCourierDuty(ctx, &dispatchv1.SetCourierDutyRequest{RequestId: id, RoundId: am,
				CourierId: "haixin-courier-01", OnDuty: true})
			return err
		}},
		{"MoveStop", func(ctx context.Context, id string) error {
			_, err := h.client.MoveStop(ctx, &dispatchv1.MoveStopRequest{RequestId: id, RoundId: am,
				HouseholdId: p.GetHouseholdId(), ToCourierId: "haixin-courier-02"})
			return err
		}},
		{"ReassignCourier", func(ctx context.Context, id string) error {
			_, err := h.client.ReassignCourier(ctx, &dispatchv1.ReassignCourierRequest{RequestId: id, RoundId: am,
				FromCourierId: "haixin-courier-03"})
			return err
		}},
		{"WithdrawParcel", func(ctx context.Context, id string) error {
			// Refused even when allowed: the parcel is on its route, nobody cancelled it after a failure.
			_, err := h.client.WithdrawParcel(ctx, &dispatchv1.WithdrawParcelRequest{RequestId: id, ParcelId: p.GetParcelId(),
				FailedRoundId: "haixin-2026-03-01-pm", Reason: "cancelled"})
			return err
		}},
	}
	if len(rpcs) != len(dispatchv1.DispatchService_ServiceDesc.Methods) {
		t.Fatalf("%d RPCs tried, the service has %d", len(rpcs), len(dispatchv1.DispatchService_ServiceDesc.Methods))
	}

	forged, err := auth.NewKeys([]byte("not-the-doorstep-key-but-32-bytes-long"), nil)
	if err != nil {
		t.Fatal(err)
	}
	forgedCtx, err := forged.Outgoing(h.bg, auth.Identity{Role: typesv1.Role_ROLE_SYSTEM, Subject: "intruder"})
	if err != nil {
		t.Fatal(err)
	}
	// Minted the day before the service's clock: two minutes' life is long over.
	stale, err := auth.NewKeys(testkit.AuthKey, func() time.Time { return at("2026-03-01", "09:00") })
	if err != nil {
		t.Fatal(err)
	}
	staleCtx, err := stale.Outgoing(h.bg, auth.Identity{Role: typesv1.Role_ROLE_DISPATCHER, Subject: dispatcherID, Compound: "haixin"})
	if err != nil {
		t.Fatal(err)
	}

	const (
		dispatcher = typesv1.Role_ROLE_DISPATCHER
		worker     = typesv1.Role_ROLE_WORKER
		system     = typesv1.Role_ROLE_SYSTEM
	)
	in := testkit.InCompound
	// want has one letter per RPC, in the order above: O ok, N NOT_FOUND, D PERMISSION_DENIED,
	// U UNAUTHENTICATED, F FAILED_PRECONDITION. The first seven are the compound's records and
	// rounds to read and keep, ListRoutes, and the next seven the dispatcher's alone; the last,
	// WithdrawParcel, only the order service's (subject "order"), for itself or for the resident or
	// worker cancelling.
	for _, tc := range []struct {
		caller string
		ctx    context.Context
		want   string
	}{
		{"dispatcher of haixin", h.ctx, "OOOOOOOO OOOOOOO D"},
		{"city-wide dispatcher", h.as(dispatcher, "dispatcher-hq"), "OOOOOOOO OOOOOOO D"},
		{"dispatcher of yuyuan", h.as(dispatcher, "dispatcher-zhou", in("yuyuan")), "NNNNNNNN NNNNNNN D"},
		{"worker of haixin", h.as(worker, "worker-li", in("haixin")), "OOOOOOOO DDDDDDD D"},
		{"city-wide worker", h.as(worker, "worker-chen"), "OOOOOOOO DDDDDDD D"},
		{"worker of yuyuan", h.as(worker, "worker-zhao", in("yuyuan")), "NNNNNNNN DDDDDDD D"},
		{"supplier staff", h.as(typesv1.Role_ROLE_SUPPLIER, "fresh-mart-staff", testkit.Supplier("fresh-mart")), "ODDDDDDD DDDDDDD D"},
		{"courier", h.as(typesv1.Role_ROLE_COURIER, "haixin-courier-02"), "ODDDDDDD DDDDDDD D"},
		{"resident", h.as(typesv1.Role_ROLE_RESIDENT, p.GetHouseholdId(), in("haixin")), "DDDDDDDD DDDDDDD D"},
		{"system", h.as(system, "seed"), "OOOOOOOO OOOOOOO D"},
		{"system for haixin's dispatcher", h.as(system, "gateway", onBehalfOf(dispatcher, "dispatcher-zhang", in("haixin"))), "OOOOOOOO OOOOOOO D"},
		{"system for a worker of yuyuan", h.as(system, "order", onBehalfOf(worker, "worker-zhao", in("yuyuan"))), "NNNNNNNN DDDDDDD N"},
		{"system for haixin's worker", h.as(system, "order", onBehalfOf(worker, "worker-li", in("haixin"))), "OOOOOOOO DDDDDDD F"},
		{"system for a resident", h.as(system, "order", onBehalfOf(typesv1.Role_ROLE_RESIDENT, p.GetHouseholdId(), in("haixin"))), "DDDDDDDD DDDDDDD F"},
		{"system for another household", h.as(system, "order", onBehalfOf(typesv1.Role_ROLE_RESIDENT, "haixin-9-1-101", in("haixin"))), "DDDDDDDD DDDDDDD N"},
		{"another service for a resident", h.as(system, "gateway", onBehalfOf(typesv1.Role_ROLE_RESIDENT, p.GetHouseholdId(), in("haixin"))), "DDDDDDDD DDDDDDD D"},
		{"system for a courier", h.as(system, "courier", onBehalfOf(typesv1.Role_ROLE_COURIER, "haixin-courier-02")), "ODDDDDDD DDDDDDD D"},
		{"no identity", h.bg, "UUUUUUUU UUUUUUU U"},
		{"identity signed with another key", forgedCtx, "UUUUUUUU UUUUUUU U"},
		{"expired identity", staleCtx, "UUUUUUUU UUUUUUU U"},
	} {
		want := strings.ReplaceAll(tc.want, " ", "")
		for i, rpc := range rpcs {
			t.Run(tc.caller+"/"+rpc.name, func(t *testing.T) {
				code := map[byte]codes.Code{'O': codes.OK, 'N': codes.NotFound, 'D': codes.PermissionDenied, 'U': codes.Unauthenticated,
					'F': codes.FailedPrecondition}[want[i]]
				if err := rpc.call(tc.ctx, tc.caller+"/"+rpc.name); status.Code(err) != code {
					t.Errorf("%s as %s: %v, want %v", rpc.name, tc.caller, err, code)
				}
			})
		}
	}

	// Another compound's round and records are refused exactly like ones that do not exist.
	zhou := h.as(dispatcher, "dispatcher-zhou", in("yuyuan"))
	const unknown = "haixin-2026-03-09-am"
	_, errUnknown := h.client.ListRoutes(h.ctx, &dispatchv1.ListRoutesRequest{RoundId: unknown})
	_, errOther := h.client.ListRoutes(zhou, &dispatchv1.ListRoutesRequest{RoundId: am})
	if got, want := status.Convert(errOther).Message(), status.Convert(errUnknown).Message(); status.Code(errUnknown) != codes.NotFound ||
		got != strings.ReplaceAll(want, unknown, am) {
		t.Errorf("another compound's round says %q, an unknown one %q", got, want)
	}
	_, errOther = h.client.ListCouriers(zhou, &dispatchv1.ListCouriersRequest{Compound: "haixin"})
	_, errNone := h.client.ListCouriers(zhou, &dispatchv1.ListCouriersRequest{Compound: "nowhere"})
	if got, want := status.Convert(errOther).Message(), status.Convert(errNone).Message(); got != strings.ReplaceAll(want, "nowhere", "haixin") {
		t.Errorf("haixin's couriers say %q, a compound that does not exist %q", got, want)
	}
}

// Events record the person behind the call (a service acting for a dispatcher records the
// dispatcher), or the service when it acts for nobody; never anything the request says.
func TestActorsComeFromTheVerifiedIdentity(t *testing.T) {
	h := start(t, at("2026-03-02", "08:00"))
	h.sitePlan(t)
	zhang := h.as(typesv1.Role_ROLE_SYSTEM, "gateway", onBehalfOf(typesv1.Role_ROLE_DISPATCHER, "dispatcher-zhang", testkit.InCompound("haixin")))
	p := h.orders.ready("2", "1", 3)
	if _, err := h.client.CheckInParcels(zhang, &dispatchv1.CheckInParcelsRequest{RequestId: "in", Compound: "haixin",
		ParcelIds: []string{p.GetParcelId()}}); err != nil {
		t.Fatal(err)
	}
	if c := h.orders.lastCaller(); c.Role != typesv1.Role_ROLE_SYSTEM || c.Subject != "dispatch" || c.OnBehalfOf == nil ||
		c.OnBehalfOf.Subject != "dispatcher-zhang" {
		t.Errorf("GetParcel called by %+v, want SYSTEM dispatch for dispatcher-zhang", c)
	}
	h.clock.Set(at("2026-03-02", "09:10"))
	if _, err := h.client.PlanRound(h.as(typesv1.Role_ROLE_SYSTEM, "seed"), &dispatchv1.PlanRoundRequest{RequestId: "plan", RoundId: am}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.MoveStop(h.ctx, &dispatchv1.MoveStopRequest{RequestId: "move", RoundId: am, HouseholdId: p.GetHouseholdId(),
		ToCourierId: "haixin-courier-01"}); err != nil {
		t.Fatal(err)
	}
	actors := func(filter string, n int) []string {
		var out []string
		for _, m := range h.waitEvents(t, filter, n) {
			a := m.event.GetActor()
			out = append(out, strings.ToLower(strings.TrimPrefix(a.GetRole().String(), "ROLE_"))+" "+a.GetId())
		}
		return out
	}
	if got := actors("doorstep.haixin.parcel.at_gate", 1); got[0] != "dispatcher dispatcher-zhang" {
		t.Errorf("at_gate by %v", got)
	}
	if got := strings.Join(actors("doorstep.haixin.parcel.assigned", 2), ", "); got != "system seed, dispatcher "+dispatcherID {
		t.Errorf("assigned by %s", got)
	}
	if got := actors("doorstep.haixin.route.planned", 3); got[0] != "system seed" || got[1] != "dispatcher "+dispatcherID ||
		got[2] != "dispatcher "+dispatcherID {
		t.Errorf("routes planned by %v", got)
	}
}

func TestRunNeedsAnAuthKeyOfAtLeast32Bytes(t *testing.T) {
	for _, key := range []string{"", "only-31-bytes-long-0123456789ab"} {
		err := app.Run(context.Background(), app.Config{AuthKey: key, DatabaseURL: "postgres://unused", NATSURL: "nats://unused"},
			slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err == nil || !strings.Contains(err.Error(), "DOORSTEP_AUTH_KEY") {
			t.Errorf("Run with a %d-byte key: %v, want an error naming DOORSTEP_AUTH_KEY", len(key), err)
		}
	}
	t.Setenv("DOORSTEP_AUTH_KEY", string(testkit.AuthKey))
	cfg, err := app.ConfigFromEnv()
	if err != nil || cfg.AuthKey != string(testkit.AuthKey) {
		t.Errorf("ConfigFromEnv = %+v, %v", cfg, err)
	}
}
