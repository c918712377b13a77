// Command gatewayd runs the gateway: the HTTP/JSON API under /api/v1/ and the pages under /.
//
// Two subcommands reach the accounts database directly, for the first accounts of a compound
// (before any worker can sign in) and for operators:
//
//	gatewayd add-staff -id wang.li -role worker -compound haixin [-name 王丽] [-supplier ID] [-courier ID]
//	    (the password is read from DOORSTEP_NEW_PASSWORD, or the first line of standard input)
//	gatewayd issue-code -household haixin-3-2-302 [-url http://gateway.example] [-qr notice.png]
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"github.com/doorstep/doorstep/services/gateway/accounts"
	"github.com/doorstep/doorstep/services/gateway/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("service", "gateway")
	if err := run(ctx, log, os.Args[1:], os.Stdin, os.Stdout); err != nil {
		log.Error("gateway failed", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger, args []string, stdin io.Reader, stdout io.Writer) error {
	cfg, err := app.ConfigFromEnv()
	if err != nil {
		return err
	}
	if len(args) == 0 {
		return app.Run(ctx, cfg, log)
	}
	switch args[0] {
	case "add-staff":
		return addStaff(ctx, cfg, args[1:], stdin, stdout)
	case "issue-code":
		return issueCode(ctx, cfg, args[1:], stdout)
	default:
		return fmt.Errorf("unknown command %q (want add-staff or issue-code, or none to serve)", args[0])
	}
}

var roles = map[string]typesv1.Role{
	"worker": typesv1.Role_ROLE_WORKER, "dispatcher": typesv1.Role_ROLE_DISPATCHER,
	"supplier": typesv1.Role_ROLE_SUPPLIER, "courier": typesv1.Role_ROLE_COURIER,
}

func addStaff(ctx context.Context, cfg app.Config, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("add-staff", flag.ContinueOnError)
	var st accounts.Staff
	var role string
	fs.StringVar(&st.ID, "id", "", "account id, the name staff sign in with")
	fs.StringVar(&role, "role", "", "worker, dispatcher, supplier or courier")
	fs.StringVar(&st.Compound, "compound", cfg.Compound, "compound")
	fs.StringVar(&st.Name, "name", "", "display name")
	fs.StringVar(&st.SupplierID, "supplier", "", "supplier id (supplier staff)")
	fs.StringVar(&st.CourierID, "courier", "", "courier id (couriers)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	r, ok := roles[role]
	if !ok {
		return errors.New("-role must be worker, dispatcher, supplier or courier")
	}
	st.Role = r
	// Never a flag: flags end up in shell history and process listings.
	st.Password = os.Getenv("DOORSTEP_NEW_PASSWORD")
	if st.Password == "" {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read password: %w", err)
		}
		st.Password = strings.TrimRight(line, "\r\n")
	}
	store, err := accounts.Open(ctx, cfg.DatabaseURL, accounts.Options{})
	if err != nil {
		return err
	}
	defer store.Close()
	if _, err := store.CreateStaff(ctx, st); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "created %s account %s in %s\n", role, st.ID, st.Compound)
	return nil
}

func issueCode(ctx context.Context, cfg app.Config, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("issue-code", flag.ContinueOnError)
	household := fs.String("household", "", "household id, e.g. haixin-3-2-302")
	by := fs.String("by", "operator", "who issues it, for the record")
	base := fs.String("url", cfg.PublicURL, "the gateway as residents reach it, for the link")
	qr := fs.String("qr", "", "write the link's QR code to this PNG file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	store, err := accounts.Open(ctx, cfg.DatabaseURL, accounts.Options{})
	if err != nil {
		return err
	}
	defer store.Close()
	code, err := store.IssueHouseholdCode(ctx, *household, *by)
	if err != nil {
		return err
	}
	link := accounts.SignInLink(*base, code.Code)
	fmt.Fprintf(stdout, "%s\t%s\t%s\n", code.HouseholdID, code.Formatted, link)
	if *qr != "" {
		png, err := accounts.QRCode(link, 512)
		if err != nil {
			return err
		}
		if err := os.WriteFile(*qr, png, 0o600); err != nil {
			return fmt.Errorf("write %s: %w", *qr, err)
		}
	}
	return nil
}
