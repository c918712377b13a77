package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/doorstep/doorstep/pkg/events"
	"github.com/doorstep/doorstep/pkg/outbox"
	eventsv1 "github.com/doorstep/doorstep/proto/gen/doorstep/events/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"
)

// produced is one order's transaction: its id (for its commit timestamp) and its events.
type produced struct {
	xid      int64
	eventIDs []string
}

// payload is one event as the relay publishes it.
type payload struct {
	subject string
	data    []byte
}

// producer writes orders' events into the order service's outbox (its pool's search_path is the
// orders schema), as PlaceOrder's transaction does.
type producer struct {
	pool    *pgxpool.Pool
	writers int

	mu    sync.Mutex
	last  []payload // the events of the latest run, replayed by the floor
	stats map[string]*sizeStat
}

type sizeStat struct{ n, bytes int }

// produce writes orders of compound: at rate orders/s for d, or, with rate 0, count orders as
// fast as the writers go. It returns the orders and the time from the first to the last commit.
func (p *producer) produce(ctx context.Context, compound string, rate float64, d time.Duration, count int) ([]produced, time.Duration, error) {
	n := count
	if rate > 0 {
		n = int(rate * d.Seconds())
	}
	jobs := make(chan int, n)
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	// An open-loop schedule: order i is due at start + i/rate whether or not earlier ones are
	// done, so a slow writer shows as a lower achieved rate, not as a slower offered one.
	g.Go(func() error {
		defer close(jobs)
		for i := range n {
			if rate > 0 {
				due := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
				if wait := time.Until(due); wait > 0 {
					select {
					case <-gctx.Done():
						return gctx.Err()
					case <-time.After(wait):
					}
				}
			}
			jobs <- i
		}
		return nil
	})
	out := make([][]produced, p.writers)
	pays := make([][]payload, p.writers)
	for w := range p.writers {
		g.Go(func() error {
			for i := range jobs {
				o, pl, err := p.write(gctx, compound, i)
				if err != nil {
					return err
				}
				out[w] = append(out[w], o)
				pays[w] = append(pays[w], pl...)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, 0, err
	}
	took := time.Since(start)
	var all []produced
	var last []payload
	for w := range out {
		all = append(all, out[w]...)
		last = append(last, pays[w]...)
	}
	p.mu.Lock()
	p.last = last
	p.mu.Unlock()
	return all, took, nil
}

// write commits one order's events and returns its transaction id.
func (p *producer) write(ctx context.Context, compound string, i int) (produced, []payload, error) {
	evs := orderEvents(compound, i, time.Now())
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return produced{}, nil, err
	}
	defer tx.Rollback(ctx)
	if err := outbox.Add(ctx, tx, evs...); err != nil {
		return produced{}, nil, err
	}
	o := produced{}
	if err := tx.QueryRow(ctx, `SELECT txid_current()`).Scan(&o.xid); err != nil {
		return produced{}, nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return produced{}, nil, err
	}
	pls := make([]payload, len(evs))
	for k, ev := range evs {
		o.eventIDs = append(o.eventIDs, ev.GetEventId())
		data, err := proto.Marshal(ev)
		if err != nil {
			return produced{}, nil, err
		}
		subject, _ := events.Subject(ev)
		pls[k] = payload{subject: subject, data: data}
		name, _ := events.Name(ev)
		p.count(name, len(data))
	}
	return o, pls, nil
}

func (p *producer) count(name string, size int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stats == nil {
		p.stats = map[string]*sizeStat{}
	}
	s := p.stats[name]
	if s == nil {
		s = &sizeStat{}
		p.stats[name] = s
	}
	s.n++
	s.bytes += size
}

func (p *producer) payloads() []payload {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

type sizes struct{ perOrder, mean, placed, parcel float64 }

func (p *producer) sizes() sizes {
	p.mu.Lock()
	defer p.mu.Unlock()
	avg := func(s *sizeStat) float64 {
		if s == nil || s.n == 0 {
			return 0
		}
		return float64(s.bytes) / float64(s.n)
	}
	pl, pc := p.stats["order.placed"], p.stats["parcel.placed"]
	if pl == nil || pc == nil {
		return sizes{}
	}
	return sizes{perOrder: float64(pl.n+pc.n) / float64(pl.n), mean: float64(pl.bytes+pc.bytes) / float64(pl.n+pc.n),
		placed: avg(pl), parcel: avg(pc)}
}

// orderEvents are the events PlaceOrder commits for a basket from one to three suppliers
// (two lines each): order.placed naming every parcel, then parcel.placed per parcel.
func orderEvents(compound string, i int, at time.Time) []*eventsv1.Event {
	orderID := uuid.Must(uuid.NewV7()).String()
	addr := &typesv1.Address{Compound: compound, Building: fmt.Sprint(1 + i%16), Unit: fmt.Sprint(1 + i%3),
		Floor: int32(1 + i%18), Room: fmt.Sprintf("%d%02d", 1+i%18, 1+i%4)}
	household := fmt.Sprintf("%s-%s-%s-%s", compound, addr.GetBuilding(), addr.GetUnit(), addr.GetRoom())
	actor := &typesv1.Actor{Role: typesv1.Role_ROLE_RESIDENT, Id: household}
	suppliers := []string{compound + "-freshmart", compound + "-hualian", compound + "-pharmacy"}
	var parcels []*eventsv1.EventParcel
	var total int64
	for k := range 1 + i%3 {
		lines := []*eventsv1.EventLine{
			{ItemId: "fm-rice-5kg", Name: "东北大米 5kg Rice", Quantity: 2, AmountFen: 9980},
			{ItemId: "fm-cabbage", Name: "大白菜 Napa cabbage", Quantity: 1000, AmountFen: 360},
		}
		parcels = append(parcels, &eventsv1.EventParcel{ParcelId: uuid.Must(uuid.NewV7()).String(), SupplierId: suppliers[k],
			Lines: lines, TotalFen: 10340})
		total += 10340
	}
	placed := events.New(compound, actor, orderID, at)
	placed.Payload = &eventsv1.Event_OrderPlaced{OrderPlaced: &eventsv1.OrderPlaced{
		HouseholdId: household, Address: addr, Parcels: parcels, TotalFen: total, Channel: "app"}}
	out := []*eventsv1.Event{placed}
	for _, pc := range parcels {
		ev := events.New(compound, actor, orderID, at)
		ev.Payload = &eventsv1.Event_ParcelStateChanged{ParcelStateChanged: &eventsv1.ParcelStateChanged{
			ParcelId: pc.GetParcelId(), State: typesv1.ParcelState_PARCEL_STATE_PLACED, HouseholdId: household}}
		out = append(out, ev)
	}
	return out
}
