package main

// `driver churn <conflist> [flags]`: the day-2 churn of a node. N pods go
// through ADD -> traffic -> CHECK -> DEL, W at a time (goroutines), each
// verb through the REAL libcni (AddNetworkList, CheckNetworkList,
// DelNetworkList) as a runtime calls them, while a GC of the network runs
// every -gc-every with the pods the runtime knows as valid attachments.
// Every -orphan-every'th pod is "forgotten" by the runtime after its CHECK
// (dropped from the valid list without DEL, as after a runtime crash): the
// next GC must detach it; its DEL then comes late and must still succeed.
// The valid list holds every pod from before its ADD until after its DEL, and
// a GC never runs while an ADD does: a GC whose list was taken before an ADD
// started, run after that ADD completed, would remove the new attachment,
// rightly by its list (seen once in 1,000 xdp pods before this lock).
//
// Per pod: a fresh netns (made here, as `ip netns add` does, named
// <prefix>-ch<n>); policy: ingress isolated, egress only TCP to
// <server>:<allow-port>. Traffic from inside the pod: a TCP connection to
// <server>:<allow-port> must answer, one to <server>:<deny-port> must time out
// (a refusal would mean the SYN passed). The server is this process, in the
// netns it runs in (the node), listening on the three ports; the deny port
// must never accept a connection.
//
// Hooks: the executor watches podfence's own invocations. After podfence's
// ADD, its programs must be on the pod's hooks (tcx both ways, XDP on the
// host veth and in the pod, or cls_bpf both ways for tc-legacy); after
// podfence's DEL, before the primary plugin deletes the veth, nothing of any
// kind may be attached there (tcx, XDP either side, cls_bpf), so the check
// does not depend on how podfence attaches (links, BPF_PROG_ATTACH, netlink).
//
// libcni 1.1.2 (Debian 12) predates GC (libcni 1.2, spec 1.1): the driver
// sends what libcni 1.2's GCNetworkList sends to each plugin of the list, the
// plugin's config with name, cniVersion and cni.dev/valid-attachments
// injected, CNI_COMMAND=GC, through libcni's invoke package; only to the
// plugins whose VERSION lists 1.1.0 (Debian's reference plugins stop at
// 1.0.0), with cniVersion 1.1.0 (1.1.2's result types stop at 1.0.0, so the
// list itself stays at 1.0.0 for ADD/CHECK/DEL).
//
// Prints one JSON report on stdout (counts, wall time, latency percentiles
// per verb, failures); exit 1 when anything failed.

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/version"
)

type churnOpts struct {
	pods, workers, orphanEvery   int
	gcEvery, denyWait            time.Duration
	prefix, mode, server, ifname string
	allowPort, denyPort, gcPort  int
}

// ---------------------------------------------------------------- netns

func sysSetns() (uintptr, error) {
	switch runtime.GOARCH {
	case "amd64":
		return 308, nil
	case "arm64":
		return 268, nil
	}
	return 0, fmt.Errorf("setns syscall number unknown for %s", runtime.GOARCH)
}

// onFreshThread runs f on a locked OS thread that is discarded afterwards
// (the goroutine ends locked), so a netns switch made there never leaks to
// other goroutines; Go starts new threads from a clean template thread.
func onFreshThread(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		errc <- f()
	}()
	return <-errc
}

// newNetns: a network namespace bound at path, as `ip netns add` makes it.
func newNetns(path string) error {
	return onFreshThread(func() error {
		f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
		if err != nil {
			return err
		}
		f.Close()
		if err := syscall.Unshare(syscall.CLONE_NEWNET); err != nil {
			os.Remove(path)
			return fmt.Errorf("unshare(CLONE_NEWNET): %w", err)
		}
		src := fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), syscall.Gettid())
		if err := syscall.Mount(src, path, "none", syscall.MS_BIND, ""); err != nil {
			os.Remove(path)
			return fmt.Errorf("bind mount %s: %w", path, err)
		}
		return nil
	})
}

func delNetns(path string) error {
	if err := syscall.Unmount(path, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("umount %s: %w", path, err)
	}
	return os.Remove(path)
}

// inNetns runs f with the calling thread in the netns at path.
func inNetns(path string, f func() error) error {
	nr, err := sysSetns()
	if err != nil {
		return err
	}
	return onFreshThread(func() error {
		fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer syscall.Close(fd)
		if _, _, e := syscall.RawSyscall(nr, uintptr(fd), syscall.CLONE_NEWNET, 0); e != 0 {
			return fmt.Errorf("setns %s: %v", path, e)
		}
		return f()
	})
}

// ---------------------------------------------------------------- hooks

const (
	iflaXdp      = 43 // IFLA_XDP
	iflaXdpProg  = 4  // IFLA_XDP_PROG_ID
	nlaTypeMask  = 0x3fff
	ifInfomsgLen = 16
)

// xdpProgID: id of the XDP program on ifname in the calling thread's netns
// (0: none), from an RTM_GETLINK dump.
func xdpProgID(ifname string) (uint32, error) {
	iface, err := net.InterfaceByName(ifname)
	if err != nil {
		return 0, err
	}
	rib, err := syscall.NetlinkRIB(syscall.RTM_GETLINK, syscall.AF_UNSPEC)
	if err != nil {
		return 0, err
	}
	msgs, err := syscall.ParseNetlinkMessage(rib)
	if err != nil {
		return 0, err
	}
	for _, m := range msgs {
		if m.Header.Type != syscall.RTM_NEWLINK || len(m.Data) < ifInfomsgLen {
			continue
		}
		if int32(binary.LittleEndian.Uint32(m.Data[4:8])) != int32(iface.Index) {
			continue
		}
		attrs, err := syscall.ParseNetlinkRouteAttr(&m)
		if err != nil {
			return 0, err
		}
		for _, a := range attrs {
			if a.Attr.Type&nlaTypeMask != iflaXdp {
				continue
			}
			for b := a.Value; len(b) >= 4; {
				l := int(binary.LittleEndian.Uint16(b[0:2]))
				t := binary.LittleEndian.Uint16(b[2:4]) & nlaTypeMask
				if l < 4 || l > len(b) {
					break
				}
				if t == iflaXdpProg && l >= 8 {
					return binary.LittleEndian.Uint32(b[4:8]), nil
				}
				if step := (l + 3) &^ 3; step < len(b) {
					b = b[step:]
				} else {
					break
				}
			}
			return 0, nil
		}
		return 0, nil
	}
	return 0, fmt.Errorf("%s: not in the RTM_GETLINK dump", ifname)
}

// clsBpfFilters: legacy tc bpf filters on dev's ingress and egress hooks.
func clsBpfFilters(dev string) (int, error) {
	n := 0
	for _, hook := range []string{"ingress", "egress"} {
		out, err := exec.Command("tc", "filter", "show", "dev", dev, hook).CombinedOutput()
		if err != nil {
			return 0, fmt.Errorf("tc filter show dev %s %s: %v: %s", dev, hook, err, out)
		}
		for _, l := range strings.Split(string(out), "\n") {
			// a filter shows as its chain's line and its own (with handle)
			if strings.Contains(l, " bpf ") && strings.Contains(l, " handle ") {
				n++
			}
		}
	}
	return n, nil
}

type hookState struct {
	tcxIn, tcxOut      int
	xdpHost, xdpPod    uint32
	clsBpf             int
	checkedCls         bool
	hostVeth, podIface string
}

func (h hookState) String() string {
	s := fmt.Sprintf("%s: tcx ingress %d, tcx egress %d, xdp %d; pod %s: xdp %d", h.hostVeth, h.tcxIn, h.tcxOut,
		h.xdpHost, h.podIface, h.xdpPod)
	if h.checkedCls {
		s += fmt.Sprintf("; cls_bpf filters %d", h.clsBpf)
	}
	return s
}

// hooksOf asks the kernel what runs on the host veth (this netns) and on the
// pod's interface (in netns podNS).
func hooksOf(hostVeth, podNS, podIface string, withCls bool) (hookState, error) {
	h := hookState{hostVeth: hostVeth, podIface: podIface, checkedCls: withCls}
	in, err := tcxProgs(hostVeth, "ingress")
	if err != nil {
		return h, err
	}
	out, err := tcxProgs(hostVeth, "egress")
	if err != nil {
		return h, err
	}
	h.tcxIn, h.tcxOut = len(in), len(out)
	if h.xdpHost, err = xdpProgID(hostVeth); err != nil {
		return h, err
	}
	if err := inNetns(podNS, func() error {
		var e error
		h.xdpPod, e = xdpProgID(podIface)
		return e
	}); err != nil {
		return h, err
	}
	if withCls {
		if h.clsBpf, err = clsBpfFilters(hostVeth); err != nil {
			return h, err
		}
	}
	return h, nil
}

// ---------------------------------------------------------------- executor

type failures struct {
	mu   sync.Mutex
	n    int
	list []string
}

func (f *failures) add(format string, a ...interface{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	if len(f.list) < 50 {
		f.list = append(f.list, fmt.Sprintf(format, a...))
	}
}

// hookExec is libcni's default executor plus a look at the pod's hooks right
// after each podfence ADD and DEL.
type hookExec struct {
	invoke.DefaultExec
	mode string
	fail *failures
	lat  *latencies // each plugin run, as "<plugin> <VERB>"
}

func envOf(env []string, key string) string {
	for _, e := range env {
		if strings.HasPrefix(e, key+"=") {
			return strings.TrimPrefix(e, key+"=")
		}
	}
	return ""
}

func hostVethOf(stdin []byte) string {
	var conf struct {
		PrevResult struct {
			Interfaces []struct {
				Name    string `json:"name"`
				Sandbox string `json:"sandbox"`
			} `json:"interfaces"`
		} `json:"prevResult"`
	}
	if json.Unmarshal(stdin, &conf) != nil {
		return ""
	}
	for _, i := range conf.PrevResult.Interfaces {
		if i.Sandbox == "" && strings.HasPrefix(i.Name, "veth") {
			return i.Name
		}
	}
	return ""
}

func (x *hookExec) ExecPlugin(ctx context.Context, path string, stdin []byte, env []string) ([]byte, error) {
	t0 := time.Now()
	out, err := x.RawExec.ExecPlugin(ctx, path, stdin, env)
	verb := envOf(env, "CNI_COMMAND")
	x.lat.add(filepath.Base(path)+" "+verb, time.Since(t0))
	if err != nil || filepath.Base(path) != "podfence" || (verb != "ADD" && verb != "DEL") {
		return out, err
	}
	cid, netns, ifname := envOf(env, "CNI_CONTAINERID"), envOf(env, "CNI_NETNS"), envOf(env, "CNI_IFNAME")
	veth := hostVethOf(stdin)
	if veth == "" || netns == "" {
		if verb == "ADD" {
			x.fail.add("%s: podfence ADD input names no host veth or netns", cid)
		}
		return out, err
	}
	h, herr := hooksOf(veth, netns, ifname, x.mode == "tc-legacy")
	if herr != nil {
		x.fail.add("%s: hooks after podfence %s: %v", cid, verb, herr)
		return out, err
	}
	if verb == "DEL" {
		if h.tcxIn+h.tcxOut+h.clsBpf != 0 || h.xdpHost != 0 || h.xdpPod != 0 {
			x.fail.add("%s: left attached after podfence DEL: %s", cid, h)
		}
		return out, err
	}
	ok := false
	switch x.mode {
	case "tc":
		ok = h.tcxIn == 1 && h.tcxOut == 1 && h.xdpHost == 0 && h.xdpPod == 0
	case "tc-legacy":
		ok = h.clsBpf == 2 && h.tcxIn == 0 && h.tcxOut == 0
	case "xdp":
		ok = h.xdpHost != 0 && h.xdpPod != 0 && h.tcxIn == 0 && h.tcxOut == 0
	}
	if !ok {
		x.fail.add("%s: after podfence ADD (mode %s) the hooks hold: %s", cid, x.mode, h)
	}
	return out, err
}

// ---------------------------------------------------------------- GC

type gcRunner struct {
	cni       *libcni.CNIConfig
	list      *libcni.NetworkConfigList
	exec      invoke.Exec
	path      string
	gcCapable map[string]bool
}

// supportsGC: the plugin's VERSION lists 1.1.0 (asked once per type).
func (g *gcRunner) supportsGC(ctx context.Context, typ string) (bool, error) {
	if v, ok := g.gcCapable[typ]; ok {
		return v, nil
	}
	info, err := g.cni.GetVersionInfo(ctx, typ)
	if err != nil {
		return false, err
	}
	v := false
	for _, s := range info.SupportedVersions() {
		v = v || s == "1.1.0"
	}
	g.gcCapable[typ] = v
	return v, nil
}

// gc: libcni 1.2's GCNetworkList, GC part (see the top of this file).
func (g *gcRunner) gc(ctx context.Context, valid []map[string]string) error {
	inject := map[string]interface{}{
		"name":                      g.list.Name,
		"cniVersion":                "1.1.0",
		"cni.dev/valid-attachments": valid,
	}
	var errs []string
	for _, p := range g.list.Plugins {
		ok, err := g.supportsGC(ctx, p.Network.Type)
		if err != nil {
			errs = append(errs, fmt.Sprintf("VERSION of %s: %v", p.Network.Type, err))
			continue
		}
		if !ok {
			continue
		}
		conf, err := libcni.InjectConf(p, inject)
		if err != nil {
			errs = append(errs, fmt.Sprintf("GC config of %s: %v", p.Network.Type, err))
			continue
		}
		pluginPath, err := g.exec.FindInPath(p.Network.Type, filepath.SplitList(g.path))
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		args := &invoke.Args{Command: "GC", Path: g.path}
		if err := invoke.ExecPluginWithoutResult(ctx, pluginPath, conf.Bytes, args, g.exec); err != nil {
			errs = append(errs, fmt.Sprintf("GC of %s: %v", p.Network.Type, err))
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// ---------------------------------------------------------------- server

type server struct {
	mu      sync.Mutex
	accepts map[int]int
}

func (s *server) listen(port int) (net.Listener, error) {
	l, err := net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", port))
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.accepts[port]++
			s.mu.Unlock()
			_, _ = c.Write([]byte("pong\n"))
			c.Close()
		}
	}()
	return l, nil
}

// probe from inside netns ns: connect to addr; "pong" read back => nil.
func probe(ns, addr string, timeout time.Duration) error {
	return inNetns(ns, func() error {
		c, err := net.DialTimeout("tcp4", addr, timeout)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(timeout))
		b, err := io.ReadAll(c)
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(b)) != "pong" {
			return fmt.Errorf("answer %q", b)
		}
		return nil
	})
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// ---------------------------------------------------------------- stats

type latencies struct {
	mu sync.Mutex
	d  map[string][]time.Duration
}

func (l *latencies) add(verb string, d time.Duration) {
	l.mu.Lock()
	l.d[verb] = append(l.d[verb], d)
	l.mu.Unlock()
}

type verbStats struct {
	N      int     `json:"n"`
	P50ms  float64 `json:"p50_ms"`
	P99ms  float64 `json:"p99_ms"`
	Maxms  float64 `json:"max_ms"`
	TotalS float64 `json:"total_s"`
}

func stats(d []time.Duration) verbStats {
	if len(d) == 0 {
		return verbStats{}
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	rank := func(p float64) float64 { // nearest rank
		i := int(p*float64(len(s))+0.999999) - 1
		if i < 0 {
			i = 0
		}
		return float64(s[i].Microseconds()) / 1000
	}
	var total time.Duration
	for _, v := range s {
		total += v
	}
	return verbStats{len(s), rank(0.50), rank(0.99), float64(s[len(s)-1].Microseconds()) / 1000,
		float64(total.Milliseconds()) / 1000}
}

// ---------------------------------------------------------------- churn

type churn struct {
	o    churnOpts
	cni  *libcni.CNIConfig
	list *libcni.NetworkConfigList
	gc   *gcRunner
	fail *failures
	lat  *latencies
	srv  *server
	// A GC excludes ADDs: an ADD that completes after a GC took its list
	// would be removed by that GC.
	gcVsAdd sync.RWMutex
	valid   struct {
		sync.Mutex
		cids     map[string]bool
		started  int // GCs that took their list
		finished int // sequence number of the last GC that completed
		cond     *sync.Cond
		done     bool
		orphans  int
	}
}

func (c *churn) rt(cid, ns string) *libcni.RuntimeConf {
	policy := fmt.Sprintf(`{"policyTypes": ["Ingress", "Egress"], "ingress": [],
		"egress": [{"to": [{"ipBlock": {"cidr": "%s/32"}}], "ports": [{"protocol": "TCP", "port": %d}]}]}`,
		c.o.server, c.o.allowPort)
	return &libcni.RuntimeConf{
		ContainerID: cid,
		NetNS:       ns,
		IfName:      c.o.ifname,
		CapabilityArgs: map[string]interface{}{
			"io.kubernetes.cri.pod-annotations": map[string]string{"podfence.io/policy": policy},
		},
	}
}

func (c *churn) setValid(cid string, v bool) {
	c.valid.Lock()
	if v {
		c.valid.cids[cid] = true
	} else {
		delete(c.valid.cids, cid)
	}
	c.valid.Unlock()
}

// awaitGC waits until a GC that took its list after the call has completed.
func (c *churn) awaitGC() {
	c.valid.Lock()
	want := c.valid.started + 1
	for c.valid.finished < want && !c.valid.done {
		c.valid.cond.Wait()
	}
	c.valid.Unlock()
}

func (c *churn) runGC(ctx context.Context) {
	c.gcVsAdd.Lock()
	defer c.gcVsAdd.Unlock()
	c.valid.Lock()
	list := make([]map[string]string, 0, len(c.valid.cids))
	for cid := range c.valid.cids {
		list = append(list, map[string]string{"containerID": cid, "ifname": c.o.ifname})
	}
	c.valid.started++
	seq := c.valid.started
	c.valid.Unlock()
	t0 := time.Now()
	err := c.gc.gc(ctx, list)
	c.lat.add("gc", time.Since(t0))
	if err != nil {
		c.fail.add("GC with %d valid attachments: %v", len(list), err)
	}
	c.valid.Lock()
	c.valid.finished = seq // GCs run one at a time
	c.valid.cond.Broadcast()
	c.valid.Unlock()
}

func (c *churn) timed(verb string, f func() error) error {
	t0 := time.Now()
	err := f()
	c.lat.add(verb, time.Since(t0))
	return err
}

func (c *churn) pod(i int) {
	cid := fmt.Sprintf("%s-%s-ch%05d", c.o.prefix, c.o.mode, i)
	nsPath := fmt.Sprintf("/run/netns/%s-ch%05d", c.o.prefix, i)
	if err := newNetns(nsPath); err != nil {
		c.fail.add("%s: netns: %v", cid, err)
		return
	}
	defer func() {
		if err := delNetns(nsPath); err != nil {
			c.fail.add("%s: deleting netns: %v", cid, err)
		}
	}()
	rt := c.rt(cid, nsPath)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	c.setValid(cid, true) // the runtime knows the sandbox before it calls ADD
	defer c.setValid(cid, false)
	c.gcVsAdd.RLock()
	err := c.timed("add", func() error { _, e := c.cni.AddNetworkList(ctx, c.list, rt); return e })
	c.gcVsAdd.RUnlock()
	if err != nil {
		c.fail.add("%s: ADD: %v", cid, err)
		// a runtime cleans up a failed ADD with DEL
		if err := c.cni.DelNetworkList(ctx, c.list, rt); err != nil {
			c.fail.add("%s: DEL after failed ADD: %v", cid, err)
		}
		return
	}
	server := func(port int) string { return fmt.Sprintf("%s:%d", c.o.server, port) }
	if err := probe(nsPath, server(c.o.allowPort), 8*time.Second); err != nil {
		c.fail.add("%s: allowed TCP to %s failed: %v", cid, server(c.o.allowPort), err)
	}
	denied := make(chan error, 1)
	go func() { denied <- probe(nsPath, server(c.o.denyPort), c.o.denyWait) }()
	if err := c.timed("check", func() error { return c.cni.CheckNetworkList(ctx, c.list, rt) }); err != nil {
		c.fail.add("%s: CHECK: %v", cid, err)
	}
	if err := <-denied; err == nil || !isTimeout(err) {
		c.fail.add("%s: denied TCP to %s: want a timeout, got %v", cid, server(c.o.denyPort), err)
	}

	if c.o.orphanEvery > 0 && i%c.o.orphanEvery == c.o.orphanEvery-1 {
		// The runtime forgets the pod: the next GC must detach it.
		c.setValid(cid, false)
		c.awaitGC()
		if err := probe(nsPath, server(c.o.gcPort), 8*time.Second); err != nil {
			c.fail.add("%s: orphan still enforced after GC (TCP to %s: %v)", cid, server(c.o.gcPort), err)
		}
		res, err := c.cni.GetNetworkListCachedResult(c.list, rt)
		if err == nil && res != nil {
			if b, err := json.Marshal(map[string]interface{}{"prevResult": res}); err == nil {
				if veth := hostVethOf(b); veth != "" {
					h, err := hooksOf(veth, nsPath, c.o.ifname, c.o.mode == "tc-legacy")
					if err != nil {
						c.fail.add("%s: hooks after GC: %v", cid, err)
					} else if h.tcxIn+h.tcxOut+h.clsBpf != 0 || h.xdpHost != 0 || h.xdpPod != 0 {
						c.fail.add("%s: orphan left attached after GC: %s", cid, h)
					}
				}
			}
		}
		c.valid.Lock()
		c.valid.orphans++
		c.valid.Unlock()
	}
	if err := c.timed("del", func() error { return c.cni.DelNetworkList(ctx, c.list, rt) }); err != nil {
		c.fail.add("%s: DEL: %v", cid, err)
	}
}

func churnMain(args []string) {
	var o churnOpts
	fs := flag.NewFlagSet("churn", flag.ExitOnError)
	fs.IntVar(&o.pods, "pods", 1000, "pods to run through ADD, traffic, CHECK, DEL")
	fs.IntVar(&o.workers, "workers", 8, "pods in flight at once")
	fs.IntVar(&o.orphanEvery, "orphan-every", 25, "every n-th pod is forgotten before DEL, for GC (0: none)")
	fs.DurationVar(&o.gcEvery, "gc-every", time.Second, "interval between GCs")
	fs.DurationVar(&o.denyWait, "deny-wait", 500*time.Millisecond, "how long a denied connection is given")
	fs.StringVar(&o.prefix, "prefix", "pfti", "netns and container ID prefix")
	fs.StringVar(&o.mode, "mode", "tc", "podfence mode of the conflist: tc, tc-legacy or xdp")
	fs.StringVar(&o.server, "server", "", "the pods' gateway, where this process listens (required)")
	fs.StringVar(&o.ifname, "ifname", "eth0", "pod interface name")
	fs.IntVar(&o.allowPort, "allow-port", 7100, "port the policy admits")
	fs.IntVar(&o.denyPort, "deny-port", 7101, "port the policy denies")
	fs.IntVar(&o.gcPort, "gc-port", 7102, "port an orphan reaches once GC detached it")
	if len(args) < 1 {
		fmt.Fprintln(os.Stderr, "usage: driver churn <conflist> [flags]")
		os.Exit(2)
	}
	confPath := args[0]
	_ = fs.Parse(args[1:])
	if o.server == "" || o.pods < 1 || o.workers < 1 {
		fmt.Fprintln(os.Stderr, "driver churn: -server is required, -pods and -workers >= 1")
		os.Exit(2)
	}
	list, err := libcni.ConfListFromFile(confPath)
	if err != nil {
		fail(fmt.Errorf("reading conflist %s: %w", confPath, err))
	}
	cniPath := os.Getenv("CNI_PATH")
	if cniPath == "" {
		fail(errors.New("CNI_PATH is not set"))
	}
	c := &churn{o: o, list: list, fail: &failures{}, lat: &latencies{d: map[string][]time.Duration{}},
		srv: &server{accepts: map[int]int{}}}
	c.valid.cids = map[string]bool{}
	c.valid.cond = sync.NewCond(&c.valid.Mutex)
	x := &hookExec{mode: o.mode, fail: c.fail, lat: c.lat}
	x.RawExec = &invoke.RawExec{Stderr: os.Stderr}
	x.PluginDecoder = version.PluginDecoder{}
	c.cni = libcni.NewCNIConfigWithCacheDir(filepath.SplitList(cniPath), os.Getenv("CNI_CACHE_DIR"), x)
	c.gc = &gcRunner{cni: c.cni, list: list, exec: x, path: cniPath, gcCapable: map[string]bool{}}
	for _, p := range []int{o.allowPort, o.denyPort, o.gcPort} {
		l, err := c.srv.listen(p)
		if err != nil {
			fail(fmt.Errorf("listening on %d: %w", p, err))
		}
		defer l.Close()
	}

	start := time.Now()
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < o.workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				c.pod(i)
			}
		}()
	}
	gcDone := make(chan struct{})
	go func() {
		defer close(gcDone)
		t := time.NewTicker(o.gcEvery)
		defer t.Stop()
		for {
			c.valid.Lock()
			done := c.valid.done
			c.valid.Unlock()
			if done {
				return
			}
			<-t.C
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			c.runGC(ctx)
			cancel()
		}
	}()
	for i := 0; i < o.pods; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	c.valid.Lock()
	c.valid.done = true
	c.valid.cond.Broadcast()
	c.valid.Unlock()
	<-gcDone
	// A last GC with no pod left valid: removes nothing, as nothing is left.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	c.runGC(ctx)
	cancel()
	wall := time.Since(start)

	c.srv.mu.Lock()
	denyAccepts := c.srv.accepts[o.denyPort]
	allowAccepts := c.srv.accepts[o.allowPort]
	c.srv.mu.Unlock()
	if denyAccepts != 0 {
		c.fail.add("the denied port %d accepted %d connections", o.denyPort, denyAccepts)
	}
	// CPU of this process and of every plugin it ran: on an idle node of
	// C cores the churn needs at least cpu/C seconds.
	var self, kids syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids)
	sec := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	report := map[string]interface{}{
		"cpu_s": map[string]float64{
			"driver_user": sec(self.Utime), "driver_sys": sec(self.Stime),
			"plugins_user": sec(kids.Utime), "plugins_sys": sec(kids.Stime),
		},
		"mode":            o.mode,
		"pods":            o.pods,
		"workers":         o.workers,
		"wall_s":          float64(wall.Milliseconds()) / 1000,
		"orphans_gced":    c.valid.orphans,
		"gcs":             len(c.lat.d["gc"]),
		"allowed_accepts": allowAccepts,
		"denied_accepts":  denyAccepts,
		"failures":        c.fail.n,
		"failure_list":    c.fail.list,
	}
	execs := map[string]verbStats{}
	for k, d := range c.lat.d {
		if strings.Contains(k, " ") {
			execs[k] = stats(d)
		} else {
			report[k] = stats(d)
		}
	}
	report["plugin_runs"] = execs
	b, _ := json.Marshal(report)
	fmt.Println(string(b))
	if c.fail.n > 0 {
		os.Exit(1)
	}
}
