// Package seed fills an empty Doorstep with the demo compound "haixin" (海信小区): its site plan,
// roster, couriers, two supermarkets and a pharmacy with their catalogs, and the community's
// donated stock for free-distribution campaigns. It goes through the
// services' public gRPC APIs, so seeded data passes the same validation as anything a user enters,
// and every call carries a fixed request id, so seeding twice changes nothing.
package seed

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/doorstep/doorstep/pkg/rounds"

	dispatchv1 "github.com/doorstep/doorstep/proto/gen/doorstep/dispatch/v1"
	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	supplierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/supplier/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Compound is the demo compound's slug.
const Compound = "haixin"

// Clients are the services seeding talks to.
type Clients struct {
	Order    orderv1.OrderServiceClient
	Supplier supplierv1.SupplierServiceClient
	Dispatch dispatchv1.DispatchServiceClient
	// Now is the services' clock, from which quarantines and suppliers' papers run; nil means
	// time.Now.
	Now func() time.Time
}

func (c Clients) today() time.Time {
	if c.Now != nil {
		return c.Now().In(rounds.Shanghai)
	}
	return time.Now().In(rounds.Shanghai)
}

// Summary says what the compound holds.
type Summary struct {
	Buildings, Households, Suppliers, Items, Couriers int
	Skipped                                           bool
}

// Building is one building of the site plan with its roster layout.
type Building struct {
	Name         string
	Units        int
	Floors       int
	RoomsPerUnit int // doors per floor in each unit
	Lift         bool
	DistanceM    int32
}

// Buildings: ten six-floor walk-ups near the gate and six eighteen-floor lift towers further in.
func Buildings() []Building {
	var bs []Building
	for i := 1; i <= 10; i++ {
		bs = append(bs, Building{Name: fmt.Sprint(i), Units: 3, Floors: 6, RoomsPerUnit: 2, DistanceM: int32(60 + 25*i)})
	}
	for i := 11; i <= 16; i++ {
		bs = append(bs, Building{Name: fmt.Sprint(i), Units: 2, Floors: 18, RoomsPerUnit: 4, Lift: true, DistanceM: int32(150 + 30*(i-10))})
	}
	return bs
}

// Run seeds the compound. The catalog goes last, so a complete catalog means an earlier run
// finished and only the suppliers' papers are renewed (a kept compound would otherwise stop
// taking orders the day they expire); after an interrupted run every step is sent again, which
// the fixed request ids make harmless.
func Run(ctx context.Context, c Clients) (Summary, error) {
	existing, err := c.Supplier.ListItems(ctx, &supplierv1.ListItemsRequest{Compound: Compound})
	if err != nil {
		return Summary{}, fmt.Errorf("list items: %w", err)
	}
	want := 0
	for _, s := range suppliers() {
		want += len(s.items)
	}
	if len(existing.GetItems()) >= want {
		for _, s := range suppliers() {
			if err := credentials(ctx, c, s); err != nil {
				return Summary{}, err
			}
		}
		return Summary{Skipped: true, Items: len(existing.GetItems())}, nil
	}
	var sum Summary
	if err := sitePlan(ctx, c, &sum); err != nil {
		return sum, err
	}
	if err := roster(ctx, c, &sum); err != nil {
		return sum, err
	}
	if err := couriers(ctx, c, &sum); err != nil {
		return sum, err
	}
	if err := catalog(ctx, c, &sum); err != nil {
		return sum, err
	}
	return sum, nil
}

func sitePlan(ctx context.Context, c Clients, sum *Summary) error {
	for _, b := range Buildings() {
		units := make([]string, b.Units)
		for u := range units {
			units[u] = fmt.Sprint(u + 1)
		}
		_, err := c.Dispatch.UpsertBuilding(ctx, &dispatchv1.UpsertBuildingRequest{
			RequestId: "seed-building-" + b.Name,
			Building: &dispatchv1.Building{Compound: Compound, Building: b.Name, Units: units, Floors: int32(b.Floors),
				HasLift: b.Lift, DistanceM: b.DistanceM},
		})
		if err != nil {
			return fmt.Errorf("building %s: %w", b.Name, err)
		}
		sum.Buildings++
	}
	return nil
}

// roster registers every door. A fixed random source makes the roster the same on every machine:
// about 4 % of flats empty, 8 % with a priority flag (over 80, living alone, chronically ill), 2 %
// in quarantine for the next ten days.
func roster(ctx context.Context, c Clients, sum *Summary) error {
	rng := rand.New(rand.NewPCG(2022, 4))
	quarantineEnds := c.today().AddDate(0, 0, 10).Format(rounds.DateLayout)
	var hs []*orderv1.Household
	for _, b := range Buildings() {
		for u := 1; u <= b.Units; u++ {
			for f := 1; f <= b.Floors; f++ {
				for r := 1; r <= b.RoomsPerUnit; r++ {
					roll := rng.IntN(100)
					h := &orderv1.Household{
						Address: &typesv1.Address{Compound: Compound, Building: b.Name, Unit: fmt.Sprint(u),
							Floor: int32(f), Room: fmt.Sprintf("%d%02d", f, r)},
						Residents:      int32(1 + rng.IntN(4)),
						Occupancy:      orderv1.Occupancy_OCCUPANCY_OCCUPIED,
						Over_80:        roll >= 4 && roll < 8,
						LivesAlone:     roll >= 6 && roll < 10,
						ChronicallyIll: roll >= 10 && roll < 12,
					}
					switch {
					case roll < 4:
						h.Occupancy, h.Residents = orderv1.Occupancy_OCCUPANCY_EMPTY, 0
					case roll < 14 && roll >= 12:
						h.QuarantinedUntil = quarantineEnds
					}
					hs = append(hs, h)
				}
			}
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for _, h := range hs {
		g.Go(func() error {
			a := h.GetAddress()
			// A quarantine runs from the day of the seed: its end is in the request id, so a seed
			// interrupted and sent again on another day is a new request, not a conflicting one.
			id := fmt.Sprintf("seed-household-%s-%s-%s", a.GetBuilding(), a.GetUnit(), a.GetRoom())
			if h.GetQuarantinedUntil() != "" {
				id += "-" + h.GetQuarantinedUntil()
			}
			_, err := c.Order.UpsertHousehold(gctx, &orderv1.UpsertHouseholdRequest{RequestId: id, Household: h})
			if err != nil {
				return fmt.Errorf("household %s-%s-%s: %w", a.GetBuilding(), a.GetUnit(), a.GetRoom(), err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	sum.Households = len(hs)
	return nil
}

// Two volunteers per pair of walk-ups, and the lift towers shared by four property staff.
var (
	courierAreas = [][]string{{"1", "2"}, {"3", "4"}, {"5", "6"}, {"7", "8"}, {"9", "10"}, {"11", "12", "13"}, {"14", "15", "16"}, {"11", "12", "13", "14", "15", "16"}}
	courierNames = []string{"王师傅", "李阿姨", "张志愿者", "刘志愿者", "陈师傅", "杨物业", "赵物业", "黄物业"}
)

func couriers(ctx context.Context, c Clients, sum *Summary) error {
	for i, area := range courierAreas {
		id := fmt.Sprintf("%s-courier-%02d", Compound, i+1)
		_, err := c.Dispatch.UpsertCourier(ctx, &dispatchv1.UpsertCourierRequest{RequestId: "seed-" + id, Courier: &dispatchv1.Courier{
			CourierId: id, Compound: Compound, Name: courierNames[i], Buildings: area, MaxParcels: 12, MaxGrams: 25_000, OnDuty: true}})
		if err != nil {
			return fmt.Errorf("courier %s: %w", id, err)
		}
		sum.Couriers++
	}
	return nil
}

type item struct {
	id, name, unit, category string
	ref, price               int64 // fen; per kilogram for weighed goods
	stock                    int64 // units, or grams for weighed goods
	ration                   int64
	weighed                  bool
	unitGrams                int64
	bundle                   string
}

type supplierSeed struct {
	id, name, kind string
	items          []item
}

// Catalog is the demo catalog. Current prices never exceed the pre-epidemic reference price.
func Catalog() []supplierSeed {
	return []supplierSeed{
		{id: "haixin-freshmart", name: "鲜丰超市 FreshMart", kind: "supermarket", items: []item{
			{id: "fm-rice-5kg", name: "东北大米 5kg Rice", unit: "bag", category: "staples", ref: 4990, price: 4990, stock: 400, unitGrams: 5000},
			{id: "fm-flour-2500g", name: "富强面粉 2.5kg Flour", unit: "bag", category: "staples", ref: 2290, price: 2190, stock: 200, unitGrams: 2500},
			{id: "fm-eggs-30", name: "鲜鸡蛋 30枚 Eggs", unit: "tray", category: "fresh", ref: 2800, price: 2800, stock: 300, ration: 2, unitGrams: 1900},
			{id: "fm-milk-1l", name: "纯牛奶 1L Milk", unit: "carton", category: "dairy", ref: 1350, price: 1290, stock: 600, unitGrams: 1050},
			{id: "fm-oil-5l", name: "花生油 5L Peanut oil", unit: "bottle", category: "staples", ref: 8990, price: 8990, stock: 120, unitGrams: 4700},
			{id: "fm-noodles-1kg", name: "挂面 1kg Noodles", unit: "pack", category: "staples", ref: 890, price: 890, stock: 500, unitGrams: 1000},
			{id: "fm-cabbage", name: "大白菜 Napa cabbage", unit: "kg", category: "vegetables", weighed: true, ref: 360, price: 360, stock: 800_000},
			{id: "fm-potato", name: "土豆 Potatoes", unit: "kg", category: "vegetables", weighed: true, ref: 480, price: 460, stock: 600_000},
			{id: "fm-tomato", name: "西红柿 Tomatoes", unit: "kg", category: "vegetables", weighed: true, ref: 860, price: 860, stock: 300_000},
			{id: "fm-pork", name: "猪肉 (前腿) Pork shoulder", unit: "kg", category: "meat", weighed: true, ref: 3600, price: 3500, stock: 200_000, ration: 2000},
			{id: "fm-chicken", name: "鸡腿 Chicken legs", unit: "kg", category: "meat", weighed: true, ref: 2800, price: 2800, stock: 150_000},
			{id: "fm-veg-pack", name: "蔬菜套餐包 Vegetable pack", unit: "pack", category: "bundles", ref: 5800, price: 5800, stock: 300, ration: 1, unitGrams: 5000,
				bundle: "白菜 1kg, 土豆 1kg, 西红柿 500g, 胡萝卜 500g, 洋葱 500g, 青椒 500g, 黄瓜 1kg"},
			{id: "fm-tofu", name: "老豆腐 Tofu", unit: "box", category: "fresh", ref: 350, price: 350, stock: 300, unitGrams: 500},
		}},
		{id: "haixin-hualian", name: "华联超市 Hualian", kind: "supermarket", items: []item{
			{id: "hl-rice-10kg", name: "五常大米 10kg Rice", unit: "bag", category: "staples", ref: 11800, price: 11800, stock: 150, unitGrams: 10000},
			{id: "hl-milk-box", name: "牛奶 250ml×12 Milk box", unit: "box", category: "dairy", ref: 5400, price: 4980, stock: 200, unitGrams: 3200},
			{id: "hl-bread", name: "切片面包 Sliced bread", unit: "loaf", category: "bakery", ref: 990, price: 990, stock: 250, unitGrams: 450},
			{id: "hl-instant-noodles", name: "方便面 5连包 Instant noodles", unit: "pack", category: "staples", ref: 1450, price: 1450, stock: 400, unitGrams: 550},
			{id: "hl-apples", name: "苹果 Apples", unit: "kg", category: "fruit", weighed: true, ref: 1190, price: 1190, stock: 300_000},
			{id: "hl-beef", name: "牛腩 Beef brisket", unit: "kg", category: "meat", weighed: true, ref: 7800, price: 7600, stock: 80_000, ration: 1000},
			{id: "hl-fish", name: "草鱼 Grass carp", unit: "kg", category: "meat", weighed: true, ref: 2400, price: 2400, stock: 100_000},
			{id: "hl-soy-sauce", name: "生抽 500ml Soy sauce", unit: "bottle", category: "condiments", ref: 1290, price: 1290, stock: 300, unitGrams: 600},
			{id: "hl-salt", name: "食盐 400g Salt", unit: "bag", category: "condiments", ref: 300, price: 300, stock: 500, unitGrams: 400},
			{id: "hl-toilet-paper", name: "卷纸 10卷 Toilet paper", unit: "pack", category: "household", ref: 2990, price: 2990, stock: 300, unitGrams: 1200},
			{id: "hl-detergent", name: "洗衣液 2kg Detergent", unit: "bottle", category: "household", ref: 3990, price: 3690, stock: 150, unitGrams: 2100},
			{id: "hl-family-pack", name: "家庭套餐 Family staples pack", unit: "pack", category: "bundles", ref: 12800, price: 12800, stock: 120, ration: 1, unitGrams: 9000,
				bundle: "大米 5kg, 挂面 1kg, 鸡蛋 15枚, 食用油 1.8L, 食盐 400g"},
		}},
		{id: "haixin-pharmacy", name: "康宁大药房 Kangning Pharmacy", kind: "pharmacy", items: []item{
			{id: "ph-masks-n95", name: "N95口罩 10只 N95 masks", unit: "box", category: "protection", ref: 3500, price: 3500, stock: 500, ration: 1, unitGrams: 150},
			{id: "ph-masks-surgical", name: "医用外科口罩 50只 Surgical masks", unit: "box", category: "protection", ref: 4500, price: 3900, stock: 600, ration: 1, unitGrams: 300},
			{id: "ph-84-disinfectant", name: "84消毒液 1L 84 disinfectant", unit: "bottle", category: "protection", ref: 990, price: 990, stock: 400, ration: 2, unitGrams: 1100},
			{id: "ph-alcohol-500ml", name: "75%酒精 500ml Alcohol", unit: "bottle", category: "protection", ref: 1290, price: 1290, stock: 400, ration: 2, unitGrams: 520},
			{id: "ph-thermometer", name: "电子体温计 Thermometer", unit: "piece", category: "medical", ref: 2500, price: 2500, stock: 150, ration: 1, unitGrams: 50},
			{id: "ph-ibuprofen", name: "布洛芬缓释胶囊 Ibuprofen", unit: "box", category: "medicine", ref: 1580, price: 1580, stock: 200, ration: 1, unitGrams: 40},
			{id: "ph-paracetamol", name: "对乙酰氨基酚片 Paracetamol", unit: "box", category: "medicine", ref: 890, price: 890, stock: 200, ration: 1, unitGrams: 30},
			{id: "ph-antigen-test", name: "抗原检测试剂 5人份 Antigen tests", unit: "box", category: "medical", ref: 3000, price: 2500, stock: 300, ration: 1, unitGrams: 200},
			{id: "ph-gloves", name: "一次性手套 100只 Gloves", unit: "box", category: "protection", ref: 2500, price: 2500, stock: 200, unitGrams: 500},
			{id: "ph-spray-bottle", name: "喷壶 Spray bottle", unit: "piece", category: "protection", ref: 800, price: 800, stock: 300, unitGrams: 150},
			{id: "ph-vitamin-c", name: "维生素C片 Vitamin C", unit: "bottle", category: "medicine", ref: 1990, price: 1990, stock: 200, unitGrams: 120},
		}},
	}
}

// Donations is the community's donated stock, which the workers keep and hand out by campaigns
// (a pack of 84 disinfectant, masks and a spray bottle, with the printed notice): free, with
// enough for every household of the compound and the notice to spare. It has no staff account of
// its own (see Staff), since the compound's workers act for it.
func Donations() supplierSeed {
	return supplierSeed{id: "haixin-donations", name: "社区捐赠物资 (donations)", kind: "donations", items: []item{
		{id: "dn-84-disinfectant", name: "84消毒液 500ml 84 disinfectant", unit: "bottle", category: "protection", stock: 1300, unitGrams: 600},
		{id: "dn-masks-10", name: "一次性口罩 10只 Masks", unit: "pack", category: "protection", stock: 1300, unitGrams: 60},
		{id: "dn-spray-bottle", name: "喷壶 Spray bottle", unit: "piece", category: "protection", stock: 1300, unitGrams: 120},
		{id: "dn-notice", name: "告知书 Printed notice", unit: "sheet", category: "notices", stock: 5000, unitGrams: 10},
	}}
}

// suppliers is every supplier seeded: the catalog's, then the donated stock.
func suppliers() []supplierSeed { return append(Catalog(), Donations()) }

func catalog(ctx context.Context, c Clients, sum *Summary) error {
	for _, s := range suppliers() {
		if _, err := c.Supplier.CreateSupplier(ctx, &supplierv1.CreateSupplierRequest{
			RequestId: "seed-" + s.id, SupplierId: s.id, Compound: Compound, Name: s.name, Kind: s.kind}); err != nil {
			return fmt.Errorf("supplier %s: %w", s.id, err)
		}
		if err := credentials(ctx, c, s); err != nil {
			return err
		}
		sum.Suppliers++
		for _, it := range s.items {
			unitGrams := it.unitGrams
			if it.weighed {
				unitGrams = 1000
			}
			_, err := c.Supplier.UpsertItem(ctx, &supplierv1.UpsertItemRequest{RequestId: "seed-" + it.id, Item: &supplierv1.Item{
				ItemId: it.id, SupplierId: s.id, Name: it.name, Unit: it.unit, Weighed: it.weighed,
				ReferencePriceFen: it.ref, CurrentPriceFen: it.price, Stock: it.stock, RationPerDay: it.ration,
				Bundle: it.bundle != "", BundleContents: it.bundle, UnitWeightGrams: unitGrams, Category: it.category}})
			if err != nil {
				return fmt.Errorf("item %s: %w", it.id, err)
			}
			sum.Items++
		}
	}
	return nil
}

// credentials gives a supplier the papers it sells with: a business licence, and a food or drug
// permit. The donated stock is sold by nobody and needs none.
func credentials(ctx context.Context, c Clients, s supplierSeed) error {
	if s.kind == "donations" {
		return nil
	}
	permit := "food_permit"
	if s.kind == "pharmacy" {
		permit = "drug_permit"
	}
	// The papers run from the day of the seed, as a real supplier's would have years left: fixed
	// dates would one day expire and stop the demo compound (and the tests on it) taking orders.
	// The request id names them, so a start on a later day renews them rather than conflicting.
	today := c.today()
	licence, permitEnds := today.AddDate(5, 0, 0).Format(rounds.DateLayout), today.AddDate(1, 0, 0).Format(rounds.DateLayout)
	if _, err := c.Supplier.UpdateCredentials(ctx, &supplierv1.UpdateCredentialsRequest{
		RequestId: fmt.Sprintf("seed-credentials-%s-%s-%s", s.id, licence, permitEnds), SupplierId: s.id,
		Credentials: []*supplierv1.Credential{
			{Kind: "business_licence", Number: "91310000" + s.id[len(s.id)-4:], ExpiresOn: licence},
			{Kind: permit, Number: "JY1310" + s.id[len(s.id)-4:], ExpiresOn: permitEnds},
		}}); err != nil && status.Code(err) != codes.Unimplemented {
		return fmt.Errorf("credentials of %s: %w", s.id, err)
	}
	return nil
}
