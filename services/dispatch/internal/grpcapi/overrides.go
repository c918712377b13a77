package grpcapi

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/doorstep/doorstep/pkg/grpcx"
	"github.com/doorstep/doorstep/pkg/rounds"
	dispatchv1 "github.com/doorstep/doorstep/proto/gen/doorstep/dispatch/v1"
	"github.com/doorstep/doorstep/services/dispatch/internal/dispatch"
)

// UpdateCompoundSettings sets a compound's round times, cutoffs and capacity.
func (s *Server) UpdateCompoundSettings(ctx context.Context, req *dispatchv1.UpdateCompoundSettingsRequest) (*dispatchv1.UpdateCompoundSettingsResponse, error) {
	var v grpcx.Violations
	requestID(&v, req.GetRequestId())
	st := req.GetSettings()
	if st == nil {
		v.Add("settings", "is required")
		return nil, v.Err()
	}
	compound(&v, st.GetCompound(), "settings.compound")
	v.Check(st.GetRoundCapacity() >= 0 && st.GetRoundCapacity() <= maxCapacity, "settings.round_capacity",
		fmt.Sprintf("must be 0 (no cap) to %d", maxCapacity))
	v.Check(len(st.GetSlots()) <= maxSlots, "settings.slots", fmt.Sprintf("at most %d rounds a day", maxSlots))
	var schedule rounds.Schedule
	clocks := true
	for i, sl := range st.GetSlots() {
		field := fmt.Sprintf("settings.slots[%d]", i)
		cutoff, err1 := clock(&v, sl.GetCutoff(), field+".cutoff")
		departs, err2 := clock(&v, sl.GetDeparts(), field+".departs")
		clocks = clocks && err1 == nil && err2 == nil
		schedule = append(schedule, rounds.Slot{Name: sl.GetSlot(), Cutoff: cutoff, Departs: departs})
	}
	if clocks {
		// rounds.Validate names the field first ("slots[1].cutoff: must be after ..."), or the
		// whole list when it is empty.
		if err := schedule.Validate(); err != nil {
			field, why, ok := strings.Cut(err.Error(), ": ")
			if !ok || !strings.HasPrefix(field, "slots") {
				field, why = "slots", err.Error()
			}
			v.Add("settings."+field, why)
		}
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	if _, err := inCompound(ctx, dispatchv1.DispatchService_UpdateCompoundSettings_FullMethodName, st.GetCompound()); err != nil {
		return nil, err
	}
	got, err := s.svc.UpdateSettings(ctx, req.GetRequestId(), dispatch.Settings{Compound: st.GetCompound(),
		Schedule: schedule, RoundCapacity: int(st.GetRoundCapacity())})
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &dispatchv1.UpdateCompoundSettingsResponse{Settings: settingsPB(got)}, nil
}

func clock(v *grpcx.Violations, s, field string) (time.Duration, error) {
	if s == "" {
		v.Add(field, "is required")
		return 0, fmt.Errorf("%s is required", field)
	}
	d, err := rounds.ParseClock(s)
	if err != nil {
		v.Add(field, "must be HH:MM (Asia/Shanghai)")
	}
	return d, err
}

// GetCompoundSettings returns a compound's round settings (the defaults when never set).
func (s *Server) GetCompoundSettings(ctx context.Context, req *dispatchv1.GetCompoundSettingsRequest) (*dispatchv1.GetCompoundSettingsResponse, error) {
	var v grpcx.Violations
	compound(&v, req.GetCompound(), "compound")
	if err := v.Err(); err != nil {
		return nil, err
	}
	if _, err := inCompound(ctx, dispatchv1.DispatchService_GetCompoundSettings_FullMethodName, req.GetCompound()); err != nil {
		return nil, err
	}
	st, err := s.svc.Settings(ctx, req.GetCompound())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &dispatchv1.GetCompoundSettingsResponse{Settings: settingsPB(st)}, nil
}

func settingsPB(st dispatch.Settings) *dispatchv1.CompoundSettings {
	out := &dispatchv1.CompoundSettings{Compound: st.Compound, RoundCapacity: int32(st.RoundCapacity)}
	for _, sl := range st.Schedule {
		out.Slots = append(out.Slots, &dispatchv1.RoundSlot{Slot: sl.Name, Cutoff: rounds.FormatClock(sl.Cutoff),
			Departs: rounds.FormatClock(sl.Departs)})
	}
	return out
}

// SetCourierDuty puts a courier on or off duty for one round.
func (s *Server) SetCourierDuty(ctx context.Context, req *dispatchv1.SetCourierDutyRequest) (*dispatchv1.SetCourierDutyResponse, error) {
	var v grpcx.Violations
	requestID(&v, req.GetRequestId())
	roundID(&v, req.GetRoundId())
	id(&v, req.GetCourierId(), "courier_id")
	if err := v.Err(); err != nil {
		return nil, err
	}
	if _, err := inRound(ctx, dispatchv1.DispatchService_SetCourierDuty_FullMethodName, req.GetRoundId()); err != nil {
		return nil, err
	}
	d, err := s.svc.SetDuty(ctx, dispatch.Duty{RequestID: req.GetRequestId(), RoundID: req.GetRoundId(),
		CourierID: req.GetCourierId(), OnDuty: req.GetOnDuty()})
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &dispatchv1.SetCourierDutyResponse{RoundId: d.RoundID, CourierId: d.CourierID, OnDuty: d.OnDuty}, nil
}

// CloseRound stops a round taking parcels before its cutoff.
func (s *Server) CloseRound(ctx context.Context, req *dispatchv1.CloseRoundRequest) (*dispatchv1.CloseRoundResponse, error) {
	var v grpcx.Violations
	requestID(&v, req.GetRequestId())
	roundID(&v, req.GetRoundId())
	if err := v.Err(); err != nil {
		return nil, err
	}
	if _, err := inRound(ctx, dispatchv1.DispatchService_CloseRound_FullMethodName, req.GetRoundId()); err != nil {
		return nil, err
	}
	r, err := s.svc.CloseRound(ctx, dispatch.CloseRoundCmd{RequestID: req.GetRequestId(), RoundID: req.GetRoundId()})
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &dispatchv1.CloseRoundResponse{Round: roundPB(r)}, nil
}

// WithdrawParcel keeps a parcel that failed at the door out of later rounds: its household
// cancelled it. The order service calls it for the resident or worker cancelling, having checked
// that they reach the household; dispatch checks again that the parcel is in the compound the
// identity names, if any, and is the resident's own.
func (s *Server) WithdrawParcel(ctx context.Context, req *dispatchv1.WithdrawParcelRequest) (*dispatchv1.WithdrawParcelResponse, error) {
	var v grpcx.Violations
	requestID(&v, req.GetRequestId())
	id(&v, req.GetParcelId(), "parcel_id")
	roundIDField(&v, req.GetFailedRoundId(), "failed_round_id")
	v.Check(len(req.GetReason()) <= maxReason, "reason", fmt.Sprintf("at most %d bytes", maxReason))
	if err := v.Err(); err != nil {
		return nil, err
	}
	who, err := caller(ctx, dispatchv1.DispatchService_WithdrawParcel_FullMethodName)
	if err != nil {
		return nil, err
	}
	cmd := dispatch.WithdrawCmd{RequestID: req.GetRequestId(), ParcelID: req.GetParcelId(),
		FailedIn: req.GetFailedRoundId(), Reason: req.GetReason(),
		By: dispatch.Actor{Role: actorRoles[who.Role], ID: who.Subject}, Compound: who.Compound}
	if who.Role == resident {
		cmd.Household = who.Subject
	}
	w, err := s.svc.WithdrawParcel(ctx, cmd)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &dispatchv1.WithdrawParcelResponse{ParcelId: w.ParcelID, RoundId: w.RoundID, EventId: w.EventID}, nil
}

// MoveStop moves one household's stop in a planned round to another courier.
func (s *Server) MoveStop(ctx context.Context, req *dispatchv1.MoveStopRequest) (*dispatchv1.MoveStopResponse, error) {
	var v grpcx.Violations
	requestID(&v, req.GetRequestId())
	roundID(&v, req.GetRoundId())
	id(&v, req.GetHouseholdId(), "household_id")
	id(&v, req.GetToCourierId(), "to_courier_id")
	if err := v.Err(); err != nil {
		return nil, err
	}
	by, err := inRound(ctx, dispatchv1.DispatchService_MoveStop_FullMethodName, req.GetRoundId())
	if err != nil {
		return nil, err
	}
	routes, err := s.svc.MoveStop(ctx, dispatch.MoveStopCmd{RequestID: req.GetRequestId(), RoundID: req.GetRoundId(),
		HouseholdID: req.GetHouseholdId(), ToCourierID: req.GetToCourierId(), By: by})
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	out := &dispatchv1.MoveStopResponse{}
	for _, r := range routes {
		out.Routes = append(out.Routes, routePB(r))
	}
	return out, nil
}

// ReassignCourier hands all of one courier's undelivered stops in a round to others.
func (s *Server) ReassignCourier(ctx context.Context, req *dispatchv1.ReassignCourierRequest) (*dispatchv1.ReassignCourierResponse, error) {
	var v grpcx.Violations
	requestID(&v, req.GetRequestId())
	roundID(&v, req.GetRoundId())
	id(&v, req.GetFromCourierId(), "from_courier_id")
	if to := req.GetToCourierId(); to != "" {
		id(&v, to, "to_courier_id")
		v.Check(to != req.GetFromCourierId(), "to_courier_id", "must differ from from_courier_id")
	}
	v.Check(len([]rune(req.GetReason())) <= maxNote, "reason", fmt.Sprintf("at most %d characters", maxNote))
	if err := v.Err(); err != nil {
		return nil, err
	}
	by, err := inRound(ctx, dispatchv1.DispatchService_ReassignCourier_FullMethodName, req.GetRoundId())
	if err != nil {
		return nil, err
	}
	res, err := s.svc.ReassignCourier(ctx, dispatch.ReassignCmd{RequestID: req.GetRequestId(), RoundID: req.GetRoundId(),
		FromCourierID: req.GetFromCourierId(), ToCourierID: req.GetToCourierId(), Reason: req.GetReason(), By: by})
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	out := &dispatchv1.ReassignCourierResponse{StopsKept: int32(res.Kept)}
	for _, r := range res.Routes {
		out.Routes = append(out.Routes, routePB(r))
	}
	return out, nil
}

// ReplanRound plans a planned round again, keeping the dispatcher's manual moves.
func (s *Server) ReplanRound(ctx context.Context, req *dispatchv1.ReplanRoundRequest) (*dispatchv1.ReplanRoundResponse, error) {
	var v grpcx.Violations
	requestID(&v, req.GetRequestId())
	roundID(&v, req.GetRoundId())
	if err := v.Err(); err != nil {
		return nil, err
	}
	by, err := inRound(ctx, dispatchv1.DispatchService_ReplanRound_FullMethodName, req.GetRoundId())
	if err != nil {
		return nil, err
	}
	plan, err := s.svc.ReplanRound(ctx, dispatch.ReplanCmd{RequestID: req.GetRequestId(), RoundID: req.GetRoundId(), By: by})
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	out := &dispatchv1.ReplanRoundResponse{Round: roundPB(plan.Round), Cost: costPB(plan.Cost), LowerBound: costPB(plan.LowerBound)}
	for _, r := range plan.Routes {
		out.Routes = append(out.Routes, routePB(r))
	}
	return out, nil
}
