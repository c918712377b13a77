package order

import (
	"errors"
	"testing"
)

var (
	household       = Caller{Actor: Actor{Role: RoleResident, ID: "haixin-3-2-302"}, Compound: "haixin"}
	worker          = Caller{Actor: Actor{Role: RoleWorker, ID: "worker-li"}, Compound: "haixin"}
	cityWorker      = Caller{Actor: Actor{Role: RoleWorker, ID: "worker-chen"}}
	dispatcher      = Caller{Actor: Actor{Role: RoleDispatcher, ID: "gate-wang"}, Compound: "haixin"}
	farDispatcher   = Caller{Actor: Actor{Role: RoleDispatcher, ID: "gate-zhou"}, Compound: "yuyuan"}
	serviceOnItsOwn = Caller{Actor: Actor{Role: RoleSystem, ID: "seed"}}
)

func TestCallerReaches(t *testing.T) {
	tests := []struct {
		name                   string
		c                      Caller
		ownHousehold, neighbor bool // haixin-3-2-302, haixin-9-1-901
		otherCompound          bool // yuyuan-1-1-101
		haixin, yuyuan         bool // the whole roster
	}{
		{"the household", household, true, false, false, false, false},
		{"a worker of haixin", worker, true, true, false, true, false},
		{"a city-wide worker", cityWorker, true, true, true, true, true},
		{"a dispatcher of haixin", dispatcher, true, true, false, true, false},
		{"a dispatcher of yuyuan", farDispatcher, false, false, true, false, true},
		{"a service", serviceOnItsOwn, true, true, true, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := [5]bool{tt.c.reachesHousehold("haixin-3-2-302", "haixin"), tt.c.reachesHousehold("haixin-9-1-901", "haixin"),
				tt.c.reachesHousehold("yuyuan-1-1-101", "yuyuan"), tt.c.reachesCompound("haixin"), tt.c.reachesCompound("yuyuan")}
			want := [5]bool{tt.ownHousehold, tt.neighbor, tt.otherCompound, tt.haixin, tt.yuyuan}
			if got != want {
				t.Errorf("reaches own, neighbour, other compound's household, haixin, yuyuan = %v, want %v", got, want)
			}
		})
	}
}

func TestPlacing(t *testing.T) {
	const hh = "haixin-3-2-302"
	resident := Actor{Role: RoleResident, ID: hh}
	li := Actor{Role: RoleWorker, ID: "worker-li"}
	tests := []struct {
		name        string
		c           Caller
		channel     Channel
		placedBy    Actor
		wantChannel Channel
		wantBy      Actor
		wantErr     error
	}{
		{"the household through the app", household, "", Actor{}, ChannelApp, resident, nil},
		{"the household naming itself", household, ChannelApp, resident, ChannelApp, resident, nil},
		{"the household by phone", household, ChannelPhone, Actor{}, "", Actor{}, ErrInvalid},
		{"the household as a worker", household, "", li, "", Actor{}, ErrPermissionDenied},
		{"a worker", worker, "", Actor{}, ChannelWorker, li, nil},
		{"a worker by phone", worker, ChannelPhone, Actor{}, ChannelPhone, li, nil},
		{"a worker naming themselves", worker, ChannelWorker, li, ChannelWorker, li, nil},
		{"a worker through the app", worker, ChannelApp, Actor{}, "", Actor{}, ErrInvalid},
		{"a worker as the household", worker, "", resident, "", Actor{}, ErrPermissionDenied},
		{"a worker as another worker", worker, "", Actor{Role: RoleWorker, ID: "worker-chen"}, "", Actor{}, ErrPermissionDenied},
		{"a dispatcher", dispatcher, "", Actor{}, "", Actor{}, ErrPermissionDenied},
		{"a service naming no one", serviceOnItsOwn, "", Actor{}, ChannelApp, resident, nil},
		{"a service naming a worker", serviceOnItsOwn, ChannelPhone, li, ChannelPhone, li, nil},
		{"a service naming another household", serviceOnItsOwn, "", Actor{Role: RoleResident, ID: "haixin-9-1-901"}, "", Actor{}, ErrPermissionDenied},
		{"a service naming a courier", serviceOnItsOwn, "", Actor{Role: RoleCourier, ID: "c1"}, "", Actor{}, ErrPermissionDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.c.placing(PlaceRequest{HouseholdID: hh, Channel: tt.channel, PlacedBy: tt.placedBy})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err == nil && (got.Channel != tt.wantChannel || got.PlacedBy != tt.wantBy) {
				t.Errorf("placed through %s by %+v, want %s by %+v", got.Channel, got.PlacedBy, tt.wantChannel, tt.wantBy)
			}
		})
	}
}

func TestCancelling(t *testing.T) {
	const hh = "haixin-3-2-302"
	li := Actor{Role: RoleWorker, ID: "worker-li"}
	tests := []struct {
		name    string
		c       Caller
		named   Actor
		want    Actor
		wantErr error
	}{
		{"the household", household, Actor{}, household.Actor, nil},
		{"a worker naming themselves", worker, li, li, nil},
		{"the household as a worker", household, li, Actor{}, ErrPermissionDenied},
		{"a service naming no one", serviceOnItsOwn, Actor{}, Actor{Role: RoleResident, ID: hh}, nil},
		{"a service naming a worker", serviceOnItsOwn, li, li, nil},
		{"a service naming another household", serviceOnItsOwn, Actor{Role: RoleResident, ID: "haixin-9-1-901"}, Actor{}, ErrPermissionDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.c.cancelling(tt.named, hh)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err == nil && got != tt.want {
				t.Errorf("cancelled by %+v, want %+v", got, tt.want)
			}
		})
	}
}
