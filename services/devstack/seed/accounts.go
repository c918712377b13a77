package seed

import (
	"context"
	"errors"
	"fmt"

	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"github.com/doorstep/doorstep/services/gateway/accounts"
)

// DemoPassword is every demo staff account's password. The demo compound is for trying Doorstep
// on one machine; a real deployment creates its accounts with gatewayd add-staff.
const DemoPassword = "doorstep-demo"

// DemoHousehold is the household whose sign-in code make run prints.
const DemoHousehold = "haixin-3-2-502"

// StaffAccount is one demo staff account.
type StaffAccount struct {
	ID, Name string
	Role     typesv1.Role
	Supplier string
	Courier  string
}

// Staff are the demo compound's staff accounts: a community worker, a dispatcher, one account per
// supplier and one per courier.
func Staff() []StaffAccount {
	out := []StaffAccount{
		{ID: "worker.haixin", Name: "周老师", Role: typesv1.Role_ROLE_WORKER},
		{ID: "dispatcher.haixin", Name: "孙经理", Role: typesv1.Role_ROLE_DISPATCHER},
	}
	for _, s := range Catalog() {
		out = append(out, StaffAccount{ID: s.id + ".staff", Name: s.name, Role: typesv1.Role_ROLE_SUPPLIER, Supplier: s.id})
	}
	for i := 1; i <= len(courierAreas); i++ {
		id := fmt.Sprintf("%s-courier-%02d", Compound, i)
		out = append(out, StaffAccount{ID: fmt.Sprintf("courier%02d.haixin", i), Name: courierNames[i-1], Role: typesv1.Role_ROLE_COURIER, Courier: id})
	}
	return out
}

// Accounts creates the demo staff accounts (an existing one is left as it is) and issues a new
// sign-in code to the demo household, returned so it can be printed; the previous code stops
// working.
func Accounts(ctx context.Context, store *accounts.Store) (accounts.IssuedCode, error) {
	for _, a := range Staff() {
		_, err := store.CreateStaff(ctx, accounts.Staff{ID: a.ID, Role: a.Role, Compound: Compound, Name: a.Name,
			SupplierID: a.Supplier, CourierID: a.Courier, Password: DemoPassword})
		if err != nil && !errors.Is(err, accounts.ErrExists) {
			return accounts.IssuedCode{}, fmt.Errorf("staff account %s: %w", a.ID, err)
		}
	}
	code, err := store.IssueHouseholdCode(ctx, DemoHousehold, "seed")
	if err != nil {
		return accounts.IssuedCode{}, err
	}
	return code, nil
}
