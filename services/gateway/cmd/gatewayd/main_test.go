package main

import (
	"bytes"
	"context"
	"image/png"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/doorstep/doorstep/pkg/testkit"
	"github.com/doorstep/doorstep/services/gateway/accounts"
)

func TestMain(m *testing.M) { testkit.Main(m) }

func TestAddStaffAndIssueCode(t *testing.T) {
	db := testkit.Postgres(t)
	t.Setenv("DATABASE_URL", db)
	t.Setenv("GATEWAY_PUBLIC_URL", "http://doorstep.haixin.example")
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	var out bytes.Buffer
	if err := run(ctx, log, []string{"add-staff", "-id", "wang.li", "-role", "worker", "-name", "王丽"},
		strings.NewReader("a long first password\n"), &out); err != nil {
		t.Fatal(err)
	}
	if err := run(ctx, log, []string{"add-staff", "-id", "x", "-role", "mayor"}, strings.NewReader(""), &out); err == nil {
		t.Error("an unknown role was accepted")
	}
	qr := filepath.Join(t.TempDir(), "notice.png")
	out.Reset()
	if err := run(ctx, log, []string{"issue-code", "-household", "haixin-3-2-302", "-qr", qr}, nil, &out); err != nil {
		t.Fatal(err)
	}
	fields := strings.Split(strings.TrimSpace(out.String()), "\t")
	if len(fields) != 3 || fields[0] != "haixin-3-2-302" || fields[2] != "http://doorstep.haixin.example/signin?code="+fields[1] {
		t.Fatalf("issue-code printed %q", out.String())
	}
	raw, err := os.ReadFile(qr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(bytes.NewReader(raw)); err != nil {
		t.Errorf("QR file: %v", err)
	}

	store, err := accounts.Open(ctx, db, accounts.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if p, err := store.SignInStaff(ctx, "wang.li", "a long first password"); err != nil || p.Name != "王丽" || p.Compound != "haixin" {
		t.Errorf("the new worker cannot sign in: %+v %v", p, err)
	}
	if p, err := store.SignInHousehold(ctx, fields[1]); err != nil || p.HouseholdID != "haixin-3-2-302" {
		t.Errorf("the printed code does not sign in: %+v %v", p, err)
	}
	if err := run(ctx, log, []string{"reboot"}, nil, &out); err == nil {
		t.Error("an unknown command was accepted")
	}
}
