package main

// `driver tcx-progs <ifname> ingress|egress`: prints the ids of the programs
// attached at a tcx hook of an interface in the CURRENT network namespace,
// one per line. Debian's bpftool 7.1 and iproute2 6.1 cannot show tcx
// attachments, so the tests ask the kernel directly (BPF_PROG_QUERY).

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"syscall"
	"unsafe"
)

const (
	bpfProgQuery   = 16 // BPF_PROG_QUERY
	bpfTcxIngress  = 46 // BPF_TCX_INGRESS (uapi >= 6.6; Debian's headers are 6.1)
	bpfTcxEgress   = 47 // BPF_TCX_EGRESS
	maxQueriedProg = 64
)

// bpfQueryAttr mirrors the BPF_PROG_QUERY part of union bpf_attr (6.6 layout).
type bpfQueryAttr struct {
	targetIfindex   uint32
	attachType      uint32
	queryFlags      uint32
	attachFlags     uint32
	progIDs         uint64
	count           uint32
	_               uint32
	progAttachFlags uint64
	linkIDs         uint64
	linkAttachFlags uint64
	revision        uint64
}

// sysBpf is __NR_bpf: Go 1.19's syscall package has no SYS_BPF.
func sysBpf() (uintptr, error) {
	switch runtime.GOARCH {
	case "amd64":
		return 321, nil
	case "arm64":
		return 280, nil
	}
	return 0, fmt.Errorf("bpf syscall number unknown for %s", runtime.GOARCH)
}

func tcxProgs(ifname, hook string) ([]uint32, error) {
	iface, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, err
	}
	var at uint32
	switch hook {
	case "ingress":
		at = bpfTcxIngress
	case "egress":
		at = bpfTcxEgress
	default:
		return nil, fmt.Errorf("hook %q is not ingress or egress", hook)
	}
	ids := make([]uint32, maxQueriedProg)
	attr := bpfQueryAttr{
		targetIfindex: uint32(iface.Index),
		attachType:    at,
		progIDs:       uint64(uintptr(unsafe.Pointer(&ids[0]))),
		count:         maxQueriedProg,
	}
	nr, err := sysBpf()
	if err != nil {
		return nil, err
	}
	_, _, errno := syscall.Syscall(nr, bpfProgQuery, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	if errno == syscall.ENOENT {
		return nil, nil // no tcx entry on the device: nothing attached
	}
	if errno != 0 {
		return nil, fmt.Errorf("BPF_PROG_QUERY(%s, tcx %s): %v", ifname, hook, errno)
	}
	return ids[:attr.count], nil
}

func tcxProgsMain(args []string) {
	if len(args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: driver tcx-progs <ifname> ingress|egress")
		os.Exit(2)
	}
	ids, err := tcxProgs(args[0], args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "driver:", err)
		os.Exit(1)
	}
	for _, id := range ids {
		fmt.Println(id)
	}
}
