// Command driver plays the container runtime for podfence's end-to-end tests:
// it runs a conflist through the REAL libcni (Debian's 1.1.2), the way
// containerd and CRI-O do, so chaining, prevResult injection, capability
// filtering and the result cache are libcni's own behaviour, not a re-creation.
//
//	driver add|check|del <conflist> <containerID> <netns-path> [ifname]
//	driver tcx-progs <ifname> ingress|egress   (see tcxquery.go)
//	driver churn <conflist> [flags]            (see churn.go)
//
// Environment:
//
//	CNI_PATH        colon-separated plugin directories (required)
//	CNI_CACHE_DIR   libcni result cache (CHECK and DEL read prevResult from it)
//	CAP_ARGS        JSON object -> RuntimeConf.CapabilityArgs (libcni passes each
//	                key only to plugins that declare the capability)
//	CNI_ARGS        "K=V;K2=V2" -> RuntimeConf.Args
//	DRIVER_TRACE_DIR  if set, every plugin invocation's stdin, stdout and
//	                environment are written there as <n>-<type>-<verb>.{stdin,stdout,env}
//	                (tests compare a plugin's output with the prevResult it got,
//	                and replay one plugin alone for latency measurements)
//
// ADD prints the final result JSON on stdout. On failure the CNI error is
// printed as JSON on stdout ({"code","msg","details"}) and the exit code is 1.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
)

// tracingExec is libcni's default executor plus a record of each call.
type tracingExec struct {
	invoke.DefaultExec
	dir string
	mu  sync.Mutex
	n   int
}

func (t *tracingExec) ExecPlugin(ctx context.Context, path string, stdin []byte, env []string) ([]byte, error) {
	out, err := t.RawExec.ExecPlugin(ctx, path, stdin, env)
	if t.dir == "" {
		return out, err
	}
	verb := "UNKNOWN"
	for _, e := range env {
		if strings.HasPrefix(e, "CNI_COMMAND=") {
			verb = strings.TrimPrefix(e, "CNI_COMMAND=")
		}
	}
	if verb == "VERSION" {
		return out, err // libcni's version probes are noise for the tests
	}
	t.mu.Lock()
	t.n++
	base := filepath.Join(t.dir, fmt.Sprintf("%02d-%s-%s", t.n, filepath.Base(path), verb))
	t.mu.Unlock()
	// Best effort: a trace write failure must not change the runtime's outcome.
	_ = os.WriteFile(base+".stdin", stdin, 0o644)
	_ = os.WriteFile(base+".stdout", out, 0o644)
	_ = os.WriteFile(base+".env", []byte(strings.Join(env, "\n")+"\n"), 0o644)
	if err != nil {
		_ = os.WriteFile(base+".err", []byte(err.Error()+"\n"), 0o644)
	}
	return out, err
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: driver add|check|del <conflist> <containerID> <netns-path> [ifname]")
	os.Exit(2)
}

func parseCniArgs(s string) ([][2]string, error) {
	var out [][2]string
	if s == "" {
		return out, nil
	}
	for _, kv := range strings.Split(s, ";") {
		parts := strings.SplitN(kv, "=", 2)
		if len(parts) != 2 {
			return nil, fmt.Errorf("CNI_ARGS: %q is not K=V", kv)
		}
		out = append(out, [2]string{parts[0], parts[1]})
	}
	return out, nil
}

// fail prints the error the way a runtime would log it and exits 1. CNI
// errors keep their code so tests can assert on it.
func fail(err error) {
	var cniErr *types.Error
	if !errors.As(err, &cniErr) {
		cniErr = &types.Error{Code: 0, Msg: err.Error()}
	}
	b, _ := json.Marshal(cniErr)
	fmt.Println(string(b))
	fmt.Fprintln(os.Stderr, "driver:", err)
	os.Exit(1)
}

func main() {
	if len(os.Args) >= 2 && os.Args[1] == "tcx-progs" {
		tcxProgsMain(os.Args[2:])
		return
	}
	if len(os.Args) >= 2 && os.Args[1] == "churn" {
		churnMain(os.Args[2:])
		return
	}
	if len(os.Args) < 5 || len(os.Args) > 6 {
		usage()
	}
	verb, confPath, cid, netns := os.Args[1], os.Args[2], os.Args[3], os.Args[4]
	ifname := "eth0"
	if len(os.Args) == 6 {
		ifname = os.Args[5]
	}

	list, err := libcni.ConfListFromFile(confPath)
	if err != nil {
		fail(fmt.Errorf("reading conflist %s: %w", confPath, err))
	}
	cniPath := os.Getenv("CNI_PATH")
	if cniPath == "" {
		fail(errors.New("CNI_PATH is not set"))
	}
	var capArgs map[string]interface{}
	if s := os.Getenv("CAP_ARGS"); s != "" {
		if err := json.Unmarshal([]byte(s), &capArgs); err != nil {
			fail(fmt.Errorf("CAP_ARGS is not a JSON object: %w", err))
		}
	}
	args, err := parseCniArgs(os.Getenv("CNI_ARGS"))
	if err != nil {
		fail(err)
	}

	exec := &tracingExec{dir: os.Getenv("DRIVER_TRACE_DIR")}
	exec.RawExec = &invoke.RawExec{Stderr: os.Stderr}
	exec.PluginDecoder = version.PluginDecoder{}
	cni := libcni.NewCNIConfigWithCacheDir(filepath.SplitList(cniPath), os.Getenv("CNI_CACHE_DIR"), exec)
	rt := &libcni.RuntimeConf{
		ContainerID:    cid,
		NetNS:          netns,
		IfName:         ifname,
		Args:           args,
		CapabilityArgs: capArgs,
	}

	// Runtimes bound every CNI call; so do we, generously.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	switch verb {
	case "add":
		res, err := cni.AddNetworkList(ctx, list, rt)
		if err != nil {
			fail(err)
		}
		b, err := json.Marshal(res)
		if err != nil {
			fail(err)
		}
		fmt.Println(string(b))
	case "check":
		if err := cni.CheckNetworkList(ctx, list, rt); err != nil {
			fail(err)
		}
	case "del":
		if err := cni.DelNetworkList(ctx, list, rt); err != nil {
			fail(err)
		}
	default:
		usage()
	}
}
