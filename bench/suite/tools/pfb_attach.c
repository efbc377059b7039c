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

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"obj", 1, 0, 'o'},	   {"ifname", 1, 0, 'i'},  {"hook", 1, 0, 'h'},
		{"ports-file", 1, 0, 'p'}, {"pin-dir", 1, 0, 'd'}, {0, 0, 0, 0},
	};
	const char *obj_path = NULL, *ifname = NULL, *hook = NULL, *ports = NULL, *pin_dir = NULL;
	struct bpf_object *obj;
	struct bpf_program *prog;
	unsigned ifindex;
	int c, err, prog_fd;
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
		default:
			return 2;
		}
	}
	if (!obj_path || !ifname || !hook || !ports) {
		fprintf(stderr, "usage: pfb_attach --obj F --ifname IF --hook H --ports-file F "
				"[--pin-dir D]\n");
		return 2;
	}
	ifindex = if_nametoindex(ifname);
	if (!ifindex)
		fail("if_nametoindex", ifname, errno);

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
	fill_ports(obj, ports);
	prog = bpf_object__find_program_by_name(obj, want);
	prog_fd = bpf_program__fd(prog);

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
		snprintf(pin, sizeof(pin), "%s/article_%s_%s", pin_dir, ifname, hook);
		err = bpf_obj_pin(link, pin);
		if (err)
			fail("bpf_obj_pin", pin, err);
	} else {
		fprintf(stderr, "pfb_attach: unknown hook %s\n", hook);
		return 2;
	}
	return 0;
}
