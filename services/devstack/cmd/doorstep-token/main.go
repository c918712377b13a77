// Command doorstep-token prints a signed identity for calling the services directly (grpcurl) as
// a person of the demo compound, with the key `make run` keeps in its data directory:
//
//	doorstep-token -role dispatcher
//	doorstep-token -role resident -subject haixin-3-2-502
//	doorstep-token -role supplier -supplier haixin-freshmart
//
// The token lives two minutes. Pass it as the x-doorstep-identity header.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/doorstep/doorstep/pkg/auth"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"github.com/doorstep/doorstep/services/devstack/stack"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "doorstep-token:", err)
		os.Exit(1)
	}
}

func run() error {
	role := flag.String("role", "worker", "resident, worker, supplier, dispatcher, courier or system")
	subject := flag.String("subject", "", "household id, account id or courier id (default: the demo's)")
	supplier := flag.String("supplier", "", "supplier id, for -role supplier")
	compound := flag.String("compound", "haixin", "compound the identity belongs to")
	dataDir := flag.String("data", envOr("DOORSTEP_DATA_DIR", ".data"), "make run's data directory (holds the key)")
	flag.Parse()

	r, ok := typesv1.Role_value["ROLE_"+strings.ToUpper(*role)]
	if !ok || r == 0 {
		return fmt.Errorf("-role %q: want resident, worker, supplier, dispatcher, courier or system", *role)
	}
	id := auth.Identity{Role: typesv1.Role(r), Subject: *subject, SupplierID: *supplier, Compound: *compound}
	if id.Subject == "" {
		id.Subject = map[typesv1.Role]string{
			typesv1.Role_ROLE_RESIDENT: "haixin-3-2-502", typesv1.Role_ROLE_WORKER: "worker.haixin",
			typesv1.Role_ROLE_DISPATCHER: "dispatcher.haixin", typesv1.Role_ROLE_COURIER: "haixin-courier-02",
			typesv1.Role_ROLE_SUPPLIER: *supplier + ".staff", typesv1.Role_ROLE_SYSTEM: "doorstep-token",
		}[id.Role]
	}
	if id.Role == typesv1.Role_ROLE_SUPPLIER {
		if id.SupplierID == "" {
			return fmt.Errorf("-role supplier needs -supplier (e.g. haixin-freshmart)")
		}
		id.Compound = ""
	}
	if id.Role == typesv1.Role_ROLE_SYSTEM || id.Role == typesv1.Role_ROLE_COURIER {
		id.Compound = ""
	}
	key, err := stack.ReadAuthKey(*dataDir)
	if err != nil {
		return err
	}
	keys, err := auth.NewKeys([]byte(key), nil)
	if err != nil {
		return err
	}
	tok, err := keys.Mint(id)
	if err != nil {
		return err
	}
	fmt.Println(tok)
	return nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
