// pfstate: what the kernel holds of podfence under one bpffs root, asked
// directly (bpf(2) and rtnetlink), for integration/crash_sweep.sh. One
// process per probe: bpftool takes 0.2-0.6 s per map dump here and the sweep
// probes after every kill point.
//
//	pfstate ROOT HOSTIF [PODNETNS PODIF]
//
// Run in the node's network namespace. Prints one fact per line, each
// "key value...", values empty when there is nothing:
//
//	dir NAME ENTRY,ENTRY...   each attachment directory and its pins
//	stub NAME/PIN ID:NAME     each pinned stub program there
//	copies FILE...            record copies in /run/podfence/<ROOT, / as _>/
//	tmp NAME...               datapath builds left behind (tmp-*)
//	partial NAME              a datapath dir whose pins a killed removal left half gone
//	datapath NAME             then, for that datapath's maps:
//	pods SLOT:FLAGS:REV...    pf_pods entries with flags != 0
//	policy SLOT...            pf_policy slots holding a policy map with entries
//	spare SLOT...             pf_policy slots holding an empty map (kept by DEL
//	                          for the slot's next pod)
//	conntrack|rule_hits|sources|frags SLOT:COUNT...   hash entries per slot
//	counters SLOT...          slots with a non-zero counter
//	tcx-ingress|tcx-egress ID:NAME...   programs at HOSTIF's tcx hooks; a
//	                          podfence stub's NAME is followed by
//	                          :SLOT@DATAPATH:live|inactive|nopolicy|nodatapath
//	xdp-host ID:NAME / xdp-pod ID:NAME  XDP program of HOSTIF / of PODIF in PODNETNS
//	cls-ingress|cls-egress ID:NAME...   cls_bpf filters at HOSTIF's clsact hooks
//	clsact yes                HOSTIF has a clsact qdisc
//
// Built offline (GO111MODULE=off, standard library only).
package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"unsafe"
)

const (
	bpfMapLookupElem  = 1
	bpfMapGetNextKey  = 4
	bpfObjGet         = 7
	bpfProgGetFdByID  = 13
	bpfMapGetFdByID   = 14
	bpfObjGetInfoByFd = 15
	bpfProgQuery      = 16
	bpfMapLookupBatch = 24
	bpfTcxIngress     = 46 // uapi >= 6.6
	bpfTcxEgress      = 47
	iflaXdp           = 43
	iflaXdpProgID     = 4
	sysSetns          = 308 // amd64
)

var nrBpf uintptr = 321 // amd64

func init() {
	if runtime.GOARCH == "arm64" {
		nrBpf = 280
	}
}

func bpf(cmd int, attr unsafe.Pointer, size uintptr) (uintptr, syscall.Errno) {
	// Raw: these calls do not block, and 16k of them through the scheduler
	// (syscall.Syscall) cost 10x more.
	r, _, e := syscall.RawSyscall(nrBpf, uintptr(cmd), uintptr(attr), size)
	return r, e
}

func objGet(path string) (int, error) {
	p, err := syscall.BytePtrFromString(path)
	if err != nil {
		return -1, err
	}
	attr := struct {
		pathname uint64
		fd       uint32
		flags    uint32
	}{pathname: uint64(uintptr(unsafe.Pointer(p)))}
	fd, e := bpf(bpfObjGet, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	runtime.KeepAlive(p)
	if e != 0 {
		return -1, fmt.Errorf("BPF_OBJ_GET %s: %w", path, e)
	}
	return int(fd), nil
}

// info fills buf with the bpf_{map,prog}_info of fd.
func info(fd int, buf []byte) error {
	attr := struct {
		fd   uint32
		len  uint32
		info uint64
	}{uint32(fd), uint32(len(buf)), uint64(uintptr(unsafe.Pointer(&buf[0])))}
	if _, e := bpf(bpfObjGetInfoByFd, unsafe.Pointer(&attr), unsafe.Sizeof(attr)); e != 0 {
		return fmt.Errorf("BPF_OBJ_GET_INFO_BY_FD: %v", e)
	}
	return nil
}

type mapInfo struct{ keySize, valueSize, maxEntries uint32 }

func mapInfoOf(fd int) (mapInfo, error) {
	buf := make([]byte, 128)
	if err := info(fd, buf); err != nil {
		return mapInfo{}, err
	}
	le := binary.LittleEndian
	return mapInfo{le.Uint32(buf[8:]), le.Uint32(buf[12:]), le.Uint32(buf[16:])}, nil
}

func lookup(fd int, key, value []byte) bool {
	attr := struct {
		fd    uint32
		_     uint32
		key   uint64
		value uint64
		flags uint64
	}{fd: uint32(fd), key: uint64(uintptr(unsafe.Pointer(&key[0]))), value: uint64(uintptr(unsafe.Pointer(&value[0])))}
	_, e := bpf(bpfMapLookupElem, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	return e == 0
}

// values reads every entry of an array map: one BPF_MAP_LOOKUP_BATCH
// (a lookup per slot costs 80 ms for the three arrays), else per element
// (map types without batch support). ok[i] says whether entry i exists.
func values(fd int, mi mapInfo, stride int) ([]byte, []bool) {
	n := int(mi.maxEntries)
	vals := make([]byte, n*stride)
	ok := make([]bool, n)
	ks := make([]byte, n*4)
	var out uint32
	attr := struct {
		inBatch, outBatch, keys, values uint64
		count, fd                       uint32
		elemFlags, flags                uint64
	}{outBatch: uint64(uintptr(unsafe.Pointer(&out))), keys: uint64(uintptr(unsafe.Pointer(&ks[0]))),
		values: uint64(uintptr(unsafe.Pointer(&vals[0]))), count: uint32(n), fd: uint32(fd)}
	_, e := bpf(bpfMapLookupBatch, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	if (e == 0 || e == syscall.ENOENT) && int(attr.count) == n {
		for i := range ok {
			ok[i] = true
		}
		return vals, ok
	}
	key := make([]byte, 4)
	for i := 0; i < n; i++ {
		binary.LittleEndian.PutUint32(key, uint32(i))
		ok[i] = lookup(fd, key, vals[i*stride:(i+1)*stride])
	}
	return vals, ok
}

// nextKey: BPF_MAP_GET_NEXT_KEY, the key after prev (nil: the first) into next.
func nextKey(fd int, prev, next []byte) syscall.Errno {
	attr := struct {
		fd   uint32
		_    uint32
		key  uint64
		next uint64
	}{fd: uint32(fd), next: uint64(uintptr(unsafe.Pointer(&next[0])))}
	if prev != nil {
		attr.key = uint64(uintptr(unsafe.Pointer(&prev[0])))
	}
	_, e := bpf(bpfMapGetNextKey, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	return e
}

// keys walks a hash map's keys.
func keys(fd int, keySize uint32, each func(k []byte)) error {
	var prev []byte
	for {
		next := make([]byte, keySize)
		e := nextKey(fd, prev, next)
		if e == syscall.ENOENT {
			return nil
		}
		if e != 0 {
			return fmt.Errorf("BPF_MAP_GET_NEXT_KEY: %v", e)
		}
		each(next)
		prev = next
	}
}

// mapEntries: whether the map with this id holds any entry (0 or 1).
func mapEntries(id uint32) (int, error) {
	attr := struct{ id, next, flags uint32 }{id: id}
	fd, e := bpf(bpfMapGetFdByID, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	if e == syscall.ENOENT {
		return 0, nil // freed meanwhile
	}
	if e != 0 {
		return 0, fmt.Errorf("BPF_MAP_GET_FD_BY_ID %d: %v", id, e)
	}
	defer syscall.Close(int(fd))
	mi, err := mapInfoOf(int(fd))
	if err != nil {
		return 0, err
	}
	e = nextKey(int(fd), nil, make([]byte, mi.keySize))
	n := 1
	switch {
	case e == syscall.ENOENT:
		n = 0
	case e != 0:
		return 0, fmt.Errorf("BPF_MAP_GET_NEXT_KEY: %v", e)
	}
	return n, nil
}

func possibleCPUs() int {
	b, err := os.ReadFile("/sys/devices/system/cpu/possible")
	if err != nil {
		return runtime.NumCPU()
	}
	n := 0
	for _, part := range strings.Split(strings.TrimSpace(string(b)), ",") {
		lo, hi, found := strings.Cut(part, "-")
		a, _ := strconv.Atoi(lo)
		z := a
		if found {
			z, _ = strconv.Atoi(hi)
		}
		n += z - a + 1
	}
	return n
}

func openMap(dir, name string) (int, mapInfo, error) {
	fd, err := objGet(filepath.Join(dir, name))
	if err != nil {
		return -1, mapInfo{}, err
	}
	mi, err := mapInfoOf(fd)
	return fd, mi, err
}

func u32(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }

// dpInfo: what a hook's stub is checked against (stubState).
type dpInfo struct {
	name           string
	active, policy map[int]bool // pf_pods slots with PF_POD_ACTIVE, pf_policy slots holding entries
}

// byScratch: the datapaths by the id of their pf_scratch map, which every
// stub of that datapath references.
var byScratch = map[uint32]*dpInfo{}

func datapath(dir string, out *[]string) error {
	add := func(k string, v []string) { *out = append(*out, strings.TrimSpace(k+" "+strings.Join(v, " "))) }
	*out = append(*out, "datapath "+filepath.Base(dir))
	dp := &dpInfo{name: filepath.Base(dir), active: map[int]bool{}, policy: map[int]bool{}}
	if fd, _, err := openMap(dir, "pf_scratch"); err == nil {
		buf := make([]byte, 128)
		if info(fd, buf) == nil {
			byScratch[u32(buf[4:])] = dp // bpf_map_info.id
		}
		syscall.Close(fd)
	}

	// pf_pods: {rev u32, flags u32} per slot
	fd, mi, err := openMap(dir, "pf_pods")
	if err != nil {
		return err
	}
	var pods []string
	vs := int(mi.valueSize)
	all, ok := values(fd, mi, vs)
	for s := range ok {
		val := all[s*vs : (s+1)*vs]
		if ok[s] && u32(val[4:]) != 0 {
			pods = append(pods, fmt.Sprintf("%d:%d:%d", s, u32(val[4:]), u32(val)))
			dp.active[s] = u32(val[4:])&1 != 0 // PF_POD_ACTIVE
		}
	}
	syscall.Close(fd)
	add("pods", pods)

	// pf_policy: an inner map id per slot; a policy when it holds entries, a
	// spare (what DEL leaves for the slot's next pod) when it is empty
	if fd, mi, err = openMap(dir, "pf_policy"); err != nil {
		return err
	}
	var pol, spare []string
	key, val := make([]byte, 4), make([]byte, 4)
	for s := uint32(0); s < mi.maxEntries; s++ {
		binary.LittleEndian.PutUint32(key, s)
		if !lookup(fd, key, val) {
			continue
		}
		n, err := mapEntries(u32(val))
		if err != nil {
			return fmt.Errorf("pf_policy[%d]: %w", s, err)
		}
		if n == 0 {
			spare = append(spare, strconv.Itoa(int(s)))
			continue
		}
		pol = append(pol, strconv.Itoa(int(s)))
		dp.policy[int(s)] = true
	}
	syscall.Close(fd)
	add("policy", pol)
	add("spare", spare)

	// Hashes whose key starts with the u32 slot; both conntrack tables
	// (IPv4 since ABI 6, and the wide one) count as "conntrack".
	for _, group := range [][]string{{"pf_conntrack", "pf_conntrack4"}, {"pf_rule_hits"}, {"pf_sources"}, {"pf_frags"}} {
		m := group[0]
		count := map[uint32]int{}
		for _, name := range group {
			fd, mi, err := openMap(dir, name)
			if err != nil {
				if os.IsNotExist(err) || strings.Contains(err.Error(), "no such file") {
					continue // older ABI
				}
				return err
			}
			if err := keys(fd, mi.keySize, func(k []byte) { count[u32(k)]++ }); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			syscall.Close(fd)
		}
		var slots []int
		for s := range count {
			slots = append(slots, int(s))
		}
		sort.Ints(slots)
		var v []string
		for _, s := range slots {
			v = append(v, fmt.Sprintf("%d:%d", s, count[uint32(s)]))
		}
		add(strings.TrimPrefix(m, "pf_"), v)
	}

	// pf_counters: per-CPU array indexed slot*2+dir
	if fd, mi, err = openMap(dir, "pf_counters"); err != nil {
		return err
	}
	stride := ((int(mi.valueSize) + 7) &^ 7) * possibleCPUs()
	all, ok = values(fd, mi, stride)
	zero := make([]byte, stride)
	seen := map[int]bool{}
	var ctr []string
	for i := range ok {
		if ok[i] && !bytes.Equal(all[i*stride:(i+1)*stride], zero) && !seen[i/2] {
			seen[i/2] = true
			ctr = append(ctr, strconv.Itoa(i/2))
		}
	}
	syscall.Close(fd)
	add("counters", ctr)
	return nil
}

func progName(id uint32) string {
	attr := struct{ id, next, flags uint32 }{id: id}
	fd, e := bpf(bpfProgGetFdByID, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	if e != 0 {
		return "?"
	}
	defer syscall.Close(int(fd))
	buf := make([]byte, 256)
	if info(int(fd), buf) != nil {
		return "?"
	}
	name := buf[64:80] // bpf_prog_info.name
	return string(bytes.TrimRight(name, "\x00"))
}

func tcxProgs(ifindex int, at uint32) ([]uint32, error) {
	ids := make([]uint32, 64)
	attr := struct {
		ifindex, attachType, queryFlags, attachFlags uint32
		progIDs                                      uint64
		count, _                                     uint32
		progAttachFlags, linkIDs, linkAttachFlags    uint64
		revision                                     uint64
	}{ifindex: uint32(ifindex), attachType: at, progIDs: uint64(uintptr(unsafe.Pointer(&ids[0]))), count: 64}
	_, e := bpf(bpfProgQuery, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	if e == syscall.ENOENT {
		return nil, nil
	}
	if e != 0 {
		return nil, fmt.Errorf("BPF_PROG_QUERY: %v", e)
	}
	return ids[:attr.count], nil
}

// xdpProg: the XDP program id of ifname in the current netns (0: none).
func xdpProg(ifname string) (uint32, int, error) {
	rib, err := syscall.NetlinkRIB(syscall.RTM_GETLINK, syscall.AF_UNSPEC)
	if err != nil {
		return 0, 0, err
	}
	msgs, err := syscall.ParseNetlinkMessage(rib)
	if err != nil {
		return 0, 0, err
	}
	for _, m := range msgs {
		if m.Header.Type != syscall.RTM_NEWLINK {
			continue
		}
		ifi := (*syscall.IfInfomsg)(unsafe.Pointer(&m.Data[0]))
		attrs, err := syscall.ParseNetlinkRouteAttr(&m)
		if err != nil {
			return 0, 0, err
		}
		var name string
		var prog uint32
		for _, a := range attrs {
			switch a.Attr.Type & 0x3fff {
			case syscall.IFLA_IFNAME:
				name = string(bytes.TrimRight(a.Value, "\x00"))
			case iflaXdp:
				for b := a.Value; len(b) >= 4; {
					l, t := int(binary.LittleEndian.Uint16(b)), binary.LittleEndian.Uint16(b[2:])&0x3fff
					if l < 4 || l > len(b) {
						break
					}
					if t == iflaXdpProgID && l >= 8 {
						prog = u32(b[4:])
					}
					b = b[(l+3)&^3:]
					if len(b) < 4 {
						break
					}
				}
			}
		}
		if name == ifname {
			return prog, int(ifi.Index), nil
		}
	}
	return 0, 0, fmt.Errorf("no interface %s", ifname)
}

// nlDump sends one rtnetlink dump request (header type typ, body) and
// returns the messages of the answer.
func nlDump(typ uint16, body []byte) ([]syscall.NetlinkMessage, error) {
	fd, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, syscall.NETLINK_ROUTE)
	if err != nil {
		return nil, err
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		return nil, err
	}
	req := make([]byte, syscall.NLMSG_HDRLEN+len(body))
	le := binary.LittleEndian
	le.PutUint32(req, uint32(len(req)))
	le.PutUint16(req[4:], typ)
	le.PutUint16(req[6:], syscall.NLM_F_REQUEST|syscall.NLM_F_DUMP)
	le.PutUint32(req[8:], 1)
	copy(req[syscall.NLMSG_HDRLEN:], body)
	if err := syscall.Sendto(fd, req, 0, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		return nil, err
	}
	var out []syscall.NetlinkMessage
	buf := make([]byte, 1<<16)
	for {
		n, _, err := syscall.Recvfrom(fd, buf, 0)
		if err != nil {
			return nil, err
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			switch m.Header.Type {
			case syscall.NLMSG_DONE:
				return out, nil
			case syscall.NLMSG_ERROR:
				if e := int32(le.Uint32(m.Data)); e != 0 {
					return nil, fmt.Errorf("rtnetlink dump %d: %v", typ, syscall.Errno(-e))
				}
				return out, nil
			}
			out = append(out, m)
		}
	}
}

// attrs splits netlink attributes (type without the nested/byte-order flags).
func attrs(b []byte) map[uint16][]byte {
	m := map[uint16][]byte{}
	for len(b) >= 4 {
		l, t := int(binary.LittleEndian.Uint16(b)), binary.LittleEndian.Uint16(b[2:])&0x3fff
		if l < 4 || l > len(b) {
			break
		}
		m[t] = b[4:l]
		if a := (l + 3) &^ 3; a < len(b) {
			b = b[a:]
		} else {
			break
		}
	}
	return m
}

const tcmsgLen = 20

func tcmsg(ifindex int, parent uint32) []byte {
	b := make([]byte, tcmsgLen)
	binary.LittleEndian.PutUint32(b[4:], uint32(ifindex))
	binary.LittleEndian.PutUint32(b[12:], parent)
	return b
}

// clsBpf: the cls_bpf filters of a clsact hook (ingress: true) as
// "PROGID:NAME"; clsact: whether the device has a clsact qdisc.
func clsBpf(ifindex int, ingress bool) ([]string, error) {
	parent := uint32(0xfffffff3) // TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_EGRESS)
	if ingress {
		parent = 0xfffffff2
	}
	msgs, err := nlDump(syscall.RTM_GETTFILTER, tcmsg(ifindex, parent))
	if err != nil {
		return nil, err
	}
	var v []string
	for _, m := range msgs {
		if len(m.Data) < tcmsgLen {
			continue
		}
		a := attrs(m.Data[tcmsgLen:])
		if string(bytes.TrimRight(a[1], "\x00")) != "bpf" { // TCA_KIND
			continue
		}
		opt := attrs(a[2])                         // TCA_OPTIONS
		if id, ok := opt[11]; ok && len(id) >= 4 { // TCA_BPF_ID
			v = append(v, progList([]uint32{u32(id)})...)
		}
	}
	return v, nil
}

func hasClsact(ifindex int) (bool, error) {
	msgs, err := nlDump(syscall.RTM_GETQDISC, tcmsg(0, 0))
	if err != nil {
		return false, err
	}
	for _, m := range msgs {
		if len(m.Data) < tcmsgLen || int(int32(binary.LittleEndian.Uint32(m.Data[4:]))) != ifindex {
			continue
		}
		if string(bytes.TrimRight(attrs(m.Data[tcmsgLen:])[1], "\x00")) == "clsact" {
			return true, nil
		}
	}
	return false, nil
}

// stubState: for a podfence stub, "SLOT@DATAPATH:STATE" read from the
// program itself: the datapath whose pf_scratch map it references, the slot
// it stores (the first "*(u32 *)(r0 + 0) = imm" of stub.cpp's program), and
// STATE live (that slot active, with a policy map), inactive, nopolicy or
// nodatapath (its datapath is not under this root).
func stubState(id uint32) string {
	attr := struct{ id, next, flags uint32 }{id: id}
	fd, e := bpf(bpfProgGetFdByID, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	if e != 0 {
		return "?"
	}
	defer syscall.Close(int(fd))
	buf := make([]byte, 256)
	if info(int(fd), buf) != nil {
		return "?"
	}
	le := binary.LittleEndian
	xlen, nmaps := le.Uint32(buf[20:]), le.Uint32(buf[52:])
	insns, maps := make([]byte, xlen+8), make([]byte, 4*nmaps+4)
	buf = make([]byte, 256)
	le.PutUint32(buf[20:], xlen) // xlated_prog_len
	le.PutUint64(buf[32:], uint64(uintptr(unsafe.Pointer(&insns[0]))))
	le.PutUint32(buf[52:], nmaps) // nr_map_ids
	le.PutUint64(buf[56:], uint64(uintptr(unsafe.Pointer(&maps[0]))))
	if info(int(fd), buf) != nil {
		return "?"
	}
	slot := rodataSlot(maps[:4*nmaps])
	for i := 0; slot < 0 && i+8 <= int(xlen); i += 8 {
		// BPF_ST|BPF_MEM|BPF_W, dst r0, off 0
		if insns[i] == 0x62 && insns[i+1]&0x0f == 0 && le.Uint16(insns[i+2:]) == 0 {
			slot = int(le.Uint32(insns[i+4:]))
			break
		}
	}
	var dp *dpInfo
	for i := uint32(0); i < nmaps; i++ {
		if d, ok := byScratch[le.Uint32(maps[4*i:])]; ok {
			dp = d
		}
	}
	switch {
	case dp == nil:
		return fmt.Sprintf("%d@?:nodatapath", slot)
	case !dp.active[slot]:
		return fmt.Sprintf("%d@%s:inactive", slot, dp.name)
	case !dp.policy[slot]:
		return fmt.Sprintf("%d@%s:nopolicy", slot, dp.name)
	}
	return fmt.Sprintf("%d@%s:live", slot, dp.name)
}

// rodataSlot: the slot in the .rodata map of a stub with a fast path
// (bpf/fastpath.bpf.c: pf_fast_slot, its first constant), or -1 for the raw
// stub, which stores it with an immediate.
func rodataSlot(ids []byte) int {
	for i := 0; i+4 <= len(ids); i += 4 {
		attr := struct{ id, next, flags uint32 }{id: binary.LittleEndian.Uint32(ids[i:])}
		fd, e := bpf(bpfMapGetFdByID, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
		if e != 0 {
			continue
		}
		buf := make([]byte, 128)
		ok := info(int(fd), buf) == nil && strings.HasSuffix(strings.TrimRight(string(buf[24:40]), "\x00"), ".rodata")
		value := make([]byte, binary.LittleEndian.Uint32(buf[12:])+8)
		ok = ok && lookup(int(fd), make([]byte, 4), value)
		syscall.Close(int(fd))
		if ok {
			return int(binary.LittleEndian.Uint32(value))
		}
	}
	return -1
}

// progList: "ID:NAME", and for podfence stubs ":SLOT@DATAPATH:STATE".
func progList(ids []uint32) []string {
	var v []string
	for _, id := range ids {
		name := progName(id)
		if strings.HasPrefix(name, "pf_stub") {
			name += ":" + stubState(id)
		}
		v = append(v, fmt.Sprintf("%d:%s", id, name))
	}
	return v
}

func main() {
	if len(os.Args) != 3 && len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: pfstate ROOT HOSTIF [PODNETNS PODIF]")
		os.Exit(2)
	}
	root, hostif := os.Args[1], os.Args[2]
	var out []string
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "pfstate:", err)
		os.Exit(1)
	}
	base := filepath.Join(root, "podfence")
	att := filepath.Join(base, "attachments")
	dirs, _ := os.ReadDir(att)
	for _, d := range dirs {
		ents, _ := os.ReadDir(filepath.Join(att, d.Name()))
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		out = append(out, "dir "+d.Name()+" "+strings.Join(names, ","))
		for _, n := range names {
			if !strings.HasPrefix(n, "stub") {
				continue
			}
			fd, err := objGet(filepath.Join(att, d.Name(), n))
			if err != nil {
				fail(err)
			}
			buf := make([]byte, 256)
			if err := info(fd, buf); err != nil {
				fail(err)
			}
			syscall.Close(fd)
			id := u32(buf[4:]) // bpf_prog_info.id
			out = append(out, fmt.Sprintf("stub %s/%s %d:%s", d.Name(), n, id, progName(id)))
		}
	}
	// Record copies outside bpffs (plugin/bpf/layout.hpp, mirror_dir): files
	// only; its bpffs/ holds node-wide backup pins, not the pods'.
	mirror := "/run/podfence/" + strings.ReplaceAll(root, "/", "_")
	ents, _ := os.ReadDir(mirror)
	var copies []string
	for _, e := range ents {
		if !e.IsDir() {
			copies = append(copies, e.Name())
		}
	}
	out = append(out, strings.TrimSpace("copies "+strings.Join(copies, " ")))
	tops, _ := os.ReadDir(base)
	var tmp []string
	for _, t := range tops {
		if strings.HasPrefix(t.Name(), "tmp-") {
			tmp = append(tmp, t.Name())
		}
	}
	out = append(out, strings.TrimSpace("tmp "+strings.Join(tmp, " ")))
	for _, t := range tops {
		if strings.HasPrefix(t.Name(), "datapath-") {
			// A datapath whose removal a kill interrupted lacks some pins:
			// reported as partial (the next verb must finish removing it).
			var dp []string
			if err := datapath(filepath.Join(base, t.Name()), &dp); err == nil {
				out = append(out, dp...)
			} else if errors.Is(err, syscall.ENOENT) {
				out = append(out, "partial "+t.Name())
			} else {
				fail(fmt.Errorf("%s: %w", t.Name(), err))
			}
		}
	}

	xdp, ifindex, err := xdpProg(hostif)
	if err != nil {
		fail(err)
	}
	for _, h := range []struct {
		name string
		at   uint32
	}{{"tcx-ingress", bpfTcxIngress}, {"tcx-egress", bpfTcxEgress}} {
		ids, err := tcxProgs(ifindex, h.at)
		if err != nil {
			fail(err)
		}
		out = append(out, strings.TrimSpace(h.name+" "+strings.Join(progList(ids), " ")))
	}
	var x []uint32
	if xdp != 0 {
		x = []uint32{xdp}
	}
	out = append(out, strings.TrimSpace("xdp-host "+strings.Join(progList(x), " ")))
	for _, h := range []struct {
		name    string
		ingress bool
	}{{"cls-ingress", true}, {"cls-egress", false}} {
		v, err := clsBpf(ifindex, h.ingress)
		if err != nil {
			fail(err)
		}
		out = append(out, strings.TrimSpace(h.name+" "+strings.Join(v, " ")))
	}
	if c, err := hasClsact(ifindex); err != nil {
		fail(err)
	} else if c {
		out = append(out, "clsact yes")
	} else {
		out = append(out, "clsact")
	}

	if len(os.Args) == 5 {
		// Last: this thread stays in the pod's netns.
		runtime.LockOSThread()
		f, err := os.Open(os.Args[3])
		if err != nil {
			fail(err)
		}
		if _, _, e := syscall.RawSyscall(sysSetns, f.Fd(), syscall.CLONE_NEWNET, 0); e != 0 {
			fail(fmt.Errorf("setns %s: %v", os.Args[3], e))
		}
		xdp, _, err := xdpProg(os.Args[4])
		if err != nil {
			fail(err)
		}
		x = nil
		if xdp != 0 {
			x = []uint32{xdp}
		}
		out = append(out, strings.TrimSpace("xdp-pod "+strings.Join(progList(x), " ")))
	}
	fmt.Println(strings.Join(out, "\n"))
}
