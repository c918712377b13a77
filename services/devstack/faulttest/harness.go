// Package faulttest runs Doorstep the way production runs it, every service, the NATS server and
// PostgreSQL as a separate process, so that a test can kill any one of them with SIGKILL and then
// check that no acknowledged order or event was lost or applied twice. The harness (building the
// binaries, starting, killing and restarting processes) is exported because bench/pipeline
// measures the same processes; the fault suite itself is in this package's tests.
package faulttest

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/doorstep/doorstep/pkg/grpcx"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// RepoRoot is the repository root: the nearest parent of the working directory that holds both
// go.work and tools/go.mod. Tests run in their package directory, `go run` wherever it is called,
// so both find it the same way.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if isFile(filepath.Join(dir, "go.work")) && isFile(filepath.Join(dir, "tools", "go.mod")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("repository root (go.work and tools/go.mod) not found above the working directory")
		}
		dir = parent
	}
}

func isFile(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir()
}

// BinDir is where Build keeps the binaries of the repository at root between runs: go build
// leaves an up-to-date binary alone, so a run after the first spends no time linking.
func BinDir(root string) (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	h := fnv.New64a()
	h.Write([]byte(root))
	dir := filepath.Join(cache, "doorstep", fmt.Sprintf("faulttest-bin-%x", h.Sum64()))
	return dir, os.MkdirAll(dir, 0o755)
}

// Binaries maps a program name ("nats-server", "orderd", ...) to its built executable.
type Binaries map[string]string

// Build compiles the NATS server and the daemons of services into dir. Services are built the way
// the Dockerfile builds them (per module, GOWORK=off, so their own go.mod is what is tested); the
// NATS server from the version pinned in tools/go.mod. Go's build cache makes every build after
// the first one a link step.
func Build(ctx context.Context, root, dir string, services ...string) (Binaries, error) {
	bins := Binaries{"nats-server": filepath.Join(dir, "nats-server")}
	for _, svc := range services {
		bins[svc+"d"] = filepath.Join(dir, svc+"d")
	}
	natsServer := bins["nats-server"]
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(2)
	g.Go(func() error {
		return goBuild(ctx, filepath.Join(root, "tools"), nil, natsServer, "github.com/nats-io/nats-server/v2")
	})
	for _, svc := range services {
		out := bins[svc+"d"]
		g.Go(func() error {
			return goBuild(ctx, filepath.Join(root, "services", svc), []string{"GOWORK=off"}, out, "./cmd/"+svc+"d")
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return bins, nil
}

func goBuild(ctx context.Context, dir string, env []string, out, pkg string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s in %s: %w\n%s", pkg, dir, err, b)
	}
	return nil
}

// Proc is a program that can be started, killed and started again, each run appending its output
// to the same log file.
type Proc struct {
	Name string
	Path string
	Args []string
	// Env is added to this process's environment (later entries win).
	Env []string
	Log string

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	starts int
	exit   int
}

// Start runs the program. The child is killed if this process dies, so a failed test leaves
// nothing behind.
func (p *Proc) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && !closed(p.done) {
		return fmt.Errorf("%s is already running", p.Name)
	}
	logf, err := os.OpenFile(p.Log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	p.starts++
	fmt.Fprintf(logf, "=== %s: start #%d at %s\n", p.Name, p.starts, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.Path, p.Args...)
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(logf, "=== %s: exit at %s: %v\n", p.Name, time.Now().Format(time.RFC3339Nano), err)
		logf.Close()
		p.mu.Lock()
		p.exit = cmd.ProcessState.ExitCode()
		p.mu.Unlock()
		close(done)
	}()
	p.cmd, p.done = cmd, done
	return nil
}

// Kill sends SIGKILL (kill -9) and waits until the process is gone.
func (p *Proc) Kill() { p.signal(syscall.SIGKILL, 0) }

// Stop asks the process to shut down gracefully (SIGTERM) and kills it after timeout.
func (p *Proc) Stop(timeout time.Duration) { p.signal(syscall.SIGTERM, timeout) }

func (p *Proc) signal(sig syscall.Signal, timeout time.Duration) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil || closed(done) {
		return
	}
	_ = cmd.Process.Signal(sig)
	if timeout > 0 {
		select {
		case <-done:
			return
		case <-time.After(timeout):
			_ = cmd.Process.Kill()
		}
	}
	<-done
}

// Running reports whether the last start is still alive.
func (p *Proc) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil && !closed(p.done)
}

// ExitCode is the exit status of the last run once it has ended (-1 when killed by a signal).
func (p *Proc) ExitCode() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exit
}

// Starts counts how often the process was started.
func (p *Proc) Starts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.starts
}

// Exited is closed when the current run ends.
func (p *Proc) Exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

func closed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// NATSServer is a nats-server process with JetStream, on 127.0.0.1:Port with its store in StoreDir,
// both kept across restarts.
func NATSServer(bin, storeDir, logFile string, port int) *Proc {
	return &Proc{Name: "nats-server", Path: bin, Log: logFile,
		Args: []string{"-a", "127.0.0.1", "-p", strconv.Itoa(port), "-js", "-sd", storeDir, "-n", "doorstep-faulttest"}}
}

// WaitNATS waits until the server at url answers JetStream requests.
func WaitNATS(ctx context.Context, url string, exited <-chan struct{}) error {
	var last error
	for {
		nc, err := nats.Connect(url, nats.Timeout(time.Second))
		if err == nil {
			js, jerr := jetstream.New(nc)
			if jerr == nil {
				actx, cancel := context.WithTimeout(ctx, 2*time.Second)
				_, jerr = js.AccountInfo(actx)
				cancel()
			}
			nc.Close()
			if jerr == nil {
				return nil
			}
			err = jerr
		}
		last = err
		if werr := pause(ctx, exited); werr != nil {
			return fmt.Errorf("nats at %s not ready: %w (last: %v)", url, werr, last)
		}
	}
}

// WaitHealthy waits until the gRPC server at addr reports SERVING.
func WaitHealthy(ctx context.Context, addr string, exited <-chan struct{}) error {
	conn, err := grpcx.Dial(addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		resp, err := hc.Check(cctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
		if werr := pause(ctx, exited); werr != nil {
			return fmt.Errorf("%s not healthy: %w (last: %v)", addr, werr, err)
		}
	}
}

// pause waits a polling interval, failing early when ctx ends or the process exited.
func pause(ctx context.Context, exited <-chan struct{}) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-exited:
		return errors.New("process exited")
	case <-time.After(50 * time.Millisecond):
		return nil
	}
}
