// SPDX-License-Identifier: Apache-2.0
/*
 * pfb_attach: loads the article's program (article.bpf.o), fills its port
 * map and attaches it to one interface of the current network namespace, in
 * a way that outlives this process: tcx links are pinned under --pin-dir
 * (Debian's libbpf 1.1 has no tcx API, so the link is created with the raw
 * BPF_LINK_CREATE attach types), XDP is attached through netlink.
 *
 *   pfb_attach --obj FILE --ifname IF --hook tcx-ingress|tcx-egress|xdp-native|xdp-generic
 *              --ports-file FILE [--pin-dir DIR]
 *   pfb_attach --empty --ifname IF --hook ... [--pin-dir DIR]
 *
 * --empty attaches a program that does nothing but pass the packet on
 * (tcx: to the next program), named pfb_empty: what any program on that
 * hook costs, the floor the suite subtracts from a program's run time.
 */
#include <errno.h>
#include <getopt.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#ifndef BPF_TCX_INGRESS
#define BPF_TCX_INGRESS 46
#define BPF_TCX_EGRESS	47
#endif

static void fail(const char *call, const char *on, int err)
{
	fprintf(stderr, "pfb_attach: %s on %s failed: %s\n", call, on,
		strerror(err < 0 ? -err : err));
	exit(1);
}

static void fill_ports(struct bpf_object *obj, const char *path)
{
	struct bpf_map *map = bpf_object__find_map_by_name(obj, "port_map");
	FILE *f = fopen(path, "r");
	unsigned long port;
	unsigned char one = 1;

	if (!map)
		fail("bpf_object__find_map_by_name", "port_map", ENOENT);
	if (!f)
		fail("fopen", path, errno);
	while (fscanf(f, "%lu", &port) == 1) {
		unsigned short key = (unsigned short)port;
		int err = bpf_map_update_elem(bpf_map__fd(map), &key, &one, BPF_ANY);

		if (err)
			fail("bpf_map_update_elem", "port_map", err);
	}
	fclose(f);
}

/* The article's program for hook, its port map filled from ports_file. The
 * object stays loaded until the process exits (the attachment holds it). */
static int load_article(const char *obj_path, const char *hook, const char *ports_file)
{
	struct bpf_object *obj;
	struct bpf_program *prog;
	int err;

	obj = bpf_object__open_file(obj_path, NULL);
	if (!obj)
		fail("bpf_object__open_file", obj_path, errno);
	/* Load only the program for the requested hook. */
	const char *want = strncmp(hook, "xdp", 3) ? "article_tc" : "article_xdp";
	bpf_object__for_each_program(prog, obj)
		bpf_program__set_autoload(prog, !strcmp(bpf_program__name(prog), want));
	err = bpf_object__load(obj);
	if (err)
		fail("bpf_object__load", obj_path, err);
	fill_ports(obj, ports_file);
	prog = bpf_object__find_program_by_name(obj, want);
	return bpf_program__fd(prog);
}

/* Two instructions: r0 = the hook's "pass on" verdict; exit. */
static int load_empty(const char *hook)
{
	int xdp = !strncmp(hook, "xdp", 3);
	struct bpf_insn insns[] = {
		{.code = BPF_ALU64 | BPF_MOV | BPF_K,
		 .dst_reg = BPF_REG_0,
		 .imm = xdp ? XDP_PASS : -1},
		{.code = BPF_JMP | BPF_EXIT},
	};
	int fd = bpf_prog_load(xdp ? BPF_PROG_TYPE_XDP : BPF_PROG_TYPE_SCHED_CLS, "pfb_empty",
			       "GPL", insns, 2, NULL);

	if (fd < 0)
		fail("bpf_prog_load", "pfb_empty", fd);
	return fd;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"obj", 1, 0, 'o'},	{"ifname", 1, 0, 'i'},
		{"hook", 1, 0, 'h'},	{"ports-file", 1, 0, 'p'},
		{"pin-dir", 1, 0, 'd'}, {"empty", 0, 0, 'e'},
		{0, 0, 0, 0},
	};
	const char *obj_path = NULL, *ifname = NULL, *hook = NULL, *ports = NULL, *pin_dir = NULL;
	unsigned ifindex;
	int c, err, prog_fd, empty = 0;
	char pin[4096];

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'o':
			obj_path = optarg;
			break;
		case 'i':
			ifname = optarg;
			break;
		case 'h':
			hook = optarg;
			break;
		case 'p':
			ports = optarg;
			break;
		case 'd':
			pin_dir = optarg;
			break;
		case 'e':
			empty = 1;
			break;
		default:
			return 2;
		}
	}
	if (!ifname || !hook || (!empty && (!obj_path || !ports))) {
		fprintf(stderr, "usage: pfb_attach (--obj F --ports-file F | --empty) --ifname IF "
				"--hook H [--pin-dir D]\n");
		return 2;
	}
	ifindex = if_nametoindex(ifname);
	if (!ifindex)
		fail("if_nametoindex", ifname, errno);

	prog_fd = empty ? load_empty(hook) : load_article(obj_path, hook, ports);

	if (!strcmp(hook, "xdp-native") || !strcmp(hook, "xdp-generic")) {
		__u32 flags = XDP_FLAGS_UPDATE_IF_NOEXIST |
			      (hook[4] == 'n' ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE);

		err = bpf_xdp_attach(ifindex, prog_fd, flags, NULL);
		if (err)
			fail("bpf_xdp_attach", ifname, err);
	} else if (!strcmp(hook, "tcx-ingress") || !strcmp(hook, "tcx-egress")) {
		int type = hook[4] == 'i' ? BPF_TCX_INGRESS : BPF_TCX_EGRESS;
		int link = bpf_link_create(prog_fd, ifindex, type, NULL);

		if (link < 0)
			fail("bpf_link_create(tcx)", ifname, link);
		if (!pin_dir)
			fail("tcx link", "--pin-dir missing", EINVAL);
		snprintf(pin, sizeof(pin), "%s/%s_%s_%s", pin_dir, empty ? "empty" : "article",
			 ifname, hook);
		err = bpf_obj_pin(link, pin);
		if (err)
			fail("bpf_obj_pin", pin, err);
	} else {
		fprintf(stderr, "pfb_attach: unknown hook %s\n", hook);
		return 2;
	}
	return 0;
}
