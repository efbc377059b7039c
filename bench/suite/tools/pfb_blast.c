// SPDX-License-Identifier: Apache-2.0
/*
 * pfb_blast: small-packet load generator for the podfence benchmark suite.
 *
 * pktgen is not available on the bench machine, so this sends prebuilt raw
 * Ethernet+IPv4/IPv6+TCP frames (54 / 74 bytes) on an AF_PACKET socket with
 * sendmmsg(), bounded by a packet count AND a wall-clock duration.
 *
 * It also samples the receiver's counter around the send window so the
 * driver gets one consistent measurement per run:
 *   received = delta of "Tcp: InSegs" in the receiver netns (/proc/net/snmp;
 *              v4 and v6 share that MIB). InSegs is counted by tcp_v4_rcv /
 *              tcp_v6_rcv, i.e. AFTER every filter under test (XDP, tc,
 *              netfilter), so it counts packets that passed all of them.
 *   cpu      = CPU time of this process plus the ksoftirqd thread of its CPU
 *              (tick accounting charges softirq work done in our context to
 *              us; work deferred to ksoftirqd is charged to it). Other
 *              processes on a shared machine do not count. Also the
 *              machine-wide busy time from /proc/stat, for reference.
 * No segment may draw a reply, or reply traffic would pollute the numbers.
 * By default the TCP flags are RST: the receiver's stack discards a RST for
 * which no socket exists without replying. --ack sends an established
 * flow's packet instead: a plain ACK whose TCP checksum is wrong on purpose.
 * tcp_v4_rcv/tcp_v6_rcv count it in InSegs before they verify the checksum,
 * then drop it (InCsumErrors) without a reply; no filter under test reads
 * TCP checksums. This matters for stateful filters: podfence serves an
 * established flow's ACK from its flow cache, but sends every FIN and RST
 * through conntrack (it must see a flow close).
 * --bpf-stats: the kernel's run-time statistics (BPF_ENABLE_STATS, on only
 * while this process holds the fd) of every BPF program that ran during the
 * window: one more CSV field, name:runs:run_ns of each, joined by '+'.
 * Tail calls are charged to the program that made them.
 *
 * Output: one CSV line on stdout:
 *   sent,received,elapsed_ns,cpu_busy_ns_total,cpu_task_ns,send_errors,replies
 *   (replies: the receiver's "Tcp: OutRsts" delta, which must stay ~0)
 *   [,name:runs:run_ns+... of the BPF programs that ran ('-' if none)]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/ip.h>
#include <netinet/ip6.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>

#define MAX_BATCH 256
#define FRAME_MAX 128

struct opts {
	const char *ifname;
	const char *rx_netns;
	unsigned char src_mac[6], dst_mac[6];
	int family;
	struct in6_addr src6, dst6;
	struct in_addr src4, dst4;
	unsigned dport, sport;
	unsigned flows; /* distinct source ports cycled through */
	unsigned long long count;
	double duration;
	unsigned batch;
	int cpu;
	bool ack, bpf_stats;
};

static void die(const char *what)
{
	fprintf(stderr, "pfb_blast: %s: %s\n", what, strerror(errno));
	exit(2);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: pfb_blast --ifname IF --src-mac M --dst-mac M --src IP --dst IP\n"
		"                 --dport N [--sport N] [--flows N] [--count N]\n"
		"                 [--duration SEC] [--batch N] [--cpu N] [--rx-netns PATH]\n"
		"                 [--ack] [--bpf-stats]\n");
	exit(2);
}

static void parse_mac(const char *s, unsigned char *mac)
{
	if (sscanf(s, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &mac[0], &mac[1], &mac[2], &mac[3], &mac[4],
		   &mac[5]) != 6) {
		fprintf(stderr, "pfb_blast: bad MAC %s\n", s);
		exit(2);
	}
}

static int parse_ip(const char *s, struct in_addr *v4, struct in6_addr *v6)
{
	if (inet_pton(AF_INET, s, v4) == 1)
		return AF_INET;
	if (inet_pton(AF_INET6, s, v6) == 1)
		return AF_INET6;
	fprintf(stderr, "pfb_blast: bad address %s\n", s);
	exit(2);
}

static uint32_t csum_add(uint32_t sum, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	for (; len > 1; len -= 2, p += 2)
		sum += (uint32_t)p[0] << 8 | p[1];
	if (len)
		sum += (uint32_t)p[0] << 8;
	return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return htons((uint16_t)~sum);
}

/* Builds one frame; returns its length. */
static size_t build_frame(const struct opts *o, unsigned sport, uint8_t *buf)
{
	struct ether_header *eth = (void *)buf;
	struct tcphdr *tcp;
	size_t l3len;
	uint32_t sum = 0;

	memset(buf, 0, FRAME_MAX);
	memcpy(eth->ether_dhost, o->dst_mac, 6);
	memcpy(eth->ether_shost, o->src_mac, 6);
	if (o->family == AF_INET) {
		struct iphdr *ip = (void *)(eth + 1);

		eth->ether_type = htons(ETHERTYPE_IP);
		ip->version = 4;
		ip->ihl = 5;
		ip->tot_len = htons(sizeof(*ip) + sizeof(*tcp));
		ip->ttl = 64;
		ip->protocol = IPPROTO_TCP;
		ip->saddr = o->src4.s_addr;
		ip->daddr = o->dst4.s_addr;
		ip->check = csum_fold(csum_add(0, ip, sizeof(*ip)));
		tcp = (void *)(ip + 1);
		l3len = sizeof(*ip);
		sum = csum_add(sum, &ip->saddr, 8);
		sum += IPPROTO_TCP + sizeof(*tcp);
	} else {
		struct ip6_hdr *ip6 = (void *)(eth + 1);

		eth->ether_type = htons(ETHERTYPE_IPV6);
		ip6->ip6_flow = htonl(6u << 28);
		ip6->ip6_plen = htons(sizeof(*tcp));
		ip6->ip6_nxt = IPPROTO_TCP;
		ip6->ip6_hlim = 64;
		ip6->ip6_src = o->src6;
		ip6->ip6_dst = o->dst6;
		tcp = (void *)(ip6 + 1);
		l3len = sizeof(*ip6);
		sum = csum_add(sum, &ip6->ip6_src, 32);
		sum += IPPROTO_TCP + sizeof(*tcp);
	}
	tcp->source = htons(sport);
	tcp->dest = htons(o->dport);
	tcp->seq = htonl(1);
	tcp->doff = 5;
	tcp->rst = !o->ack;
	tcp->ack = o->ack;
	tcp->window = htons(512);
	tcp->check = csum_fold(csum_add(sum, tcp, sizeof(*tcp)));
	if (o->ack)
		tcp->check ^= htons(0x5555); /* so that the receiver drops it unanswered */
	return sizeof(*eth) + l3len + sizeof(*tcp);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

/* Machine-wide busy nanoseconds from the "cpu" line of /proc/stat. */
static uint64_t read_cpu_busy(void)
{
	unsigned long long v[8] = {0};
	long hz = sysconf(_SC_CLK_TCK);
	FILE *f = fopen("/proc/stat", "r");

	if (!f)
		die("open /proc/stat");
	if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
		   &v[5], &v[6]) != 7)
		die("parse /proc/stat");
	fclose(f);
	/* user nice system [idle] [iowait] irq softirq */
	return (v[0] + v[1] + v[2] + v[5] + v[6]) * 1000000000ull / hz;
}

/* pid of ksoftirqd/<cpu>, 0 if not found. */
static int find_ksoftirqd(int cpu)
{
	char want[32], path[300], comm[64];
	struct dirent *de;
	DIR *d = opendir("/proc");
	int pid = 0;

	if (!d)
		return 0;
	snprintf(want, sizeof(want), "ksoftirqd/%d\n", cpu);
	while (!pid && (de = readdir(d))) {
		FILE *f;

		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/comm", de->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(comm, sizeof(comm), f) && !strcmp(comm, want))
			pid = atoi(de->d_name);
		fclose(f);
	}
	closedir(d);
	return pid;
}

/* Time a task has spent on a CPU, ns (first field of /proc/<pid>/schedstat). */
static uint64_t task_cpu_ns(int pid)
{
	unsigned long long ns = 0;
	char path[64];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/schedstat", pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (fscanf(f, "%llu", &ns) != 1)
		ns = 0;
	fclose(f);
	return ns;
}

/* CPU time of this process and of our CPU's ksoftirqd. */
static uint64_t read_task_cpu(int ksoftirqd)
{
	return task_cpu_ns(getpid()) + (ksoftirqd ? task_cpu_ns(ksoftirqd) : 0);
}

/* Opens the receiver netns' /proc/net/snmp: the file stays bound to the
 * netns it was opened in, so we can switch back and read it later. */
static int open_rx_counter(const char *netns)
{
	int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	int target, fd;

	if (self < 0)
		die("open /proc/self/ns/net");
	target = open(netns, O_RDONLY | O_CLOEXEC);
	if (target < 0)
		die("open --rx-netns");
	if (setns(target, CLONE_NEWNET))
		die("setns to --rx-netns");
	fd = open("/proc/self/net/snmp", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die("open receiver /proc/self/net/snmp");
	if (setns(self, CLONE_NEWNET))
		die("setns back to the sender netns");
	close(target);
	close(self);
	return fd;
}

/* One "Tcp:" counter from an open snmp file: a names line, then a values line. */
static unsigned long long read_tcp_counter(int fd, const char *name)
{
	char buf[8192], *names, *vals, *save_n, *save_v, *n, *v;
	unsigned long long result = 0;
	ssize_t len = pread(fd, buf, sizeof(buf) - 1, 0);

	if (len <= 0)
		die("read receiver snmp");
	buf[len] = 0;
	names = strstr(buf, "\nTcp:");
	vals = names ? strstr(names + 1, "\nTcp:") : NULL;
	if (!vals)
		return 0;
	names = strndup(names + 1, strcspn(names + 1, "\n"));
	vals = strndup(vals + 1, strcspn(vals + 1, "\n"));
	for (n = strtok_r(names, " ", &save_n), v = strtok_r(vals, " ", &save_v); n && v;
	     n = strtok_r(NULL, " ", &save_n), v = strtok_r(NULL, " ", &save_v)) {
		if (!strcmp(n, name)) {
			result = strtoull(v, NULL, 10);
			break;
		}
	}
	free(names);
	free(vals);
	return result;
}

/* Run-time statistics of every loaded BPF program, by id. */
struct prog_stat {
	__u32 id;
	__u64 runs, run_ns;
	char name[BPF_OBJ_NAME_LEN];
};

struct prog_stats {
	struct prog_stat *v;
	size_t n, cap;
};

static void read_prog_stats(struct prog_stats *ps)
{
	__u32 id = 0;

	ps->n = 0;
	while (!bpf_prog_get_next_id(id, &id)) {
		struct bpf_prog_info info;
		__u32 len = sizeof(info);
		int fd = bpf_prog_get_fd_by_id(id);

		if (fd < 0)
			continue; /* unloaded since */
		memset(&info, 0, sizeof(info));
		if (bpf_obj_get_info_by_fd(fd, &info, &len))
			die("bpf_obj_get_info_by_fd");
		close(fd);
		if (ps->n == ps->cap) {
			ps->cap = ps->cap ? 2 * ps->cap : 256;
			ps->v = realloc(ps->v, ps->cap * sizeof(*ps->v));
			if (!ps->v)
				die("realloc");
		}
		ps->v[ps->n].id = id;
		ps->v[ps->n].runs = info.run_cnt;
		ps->v[ps->n].run_ns = info.run_time_ns;
		memcpy(ps->v[ps->n].name, info.name, sizeof(info.name));
		ps->n++;
	}
}

/* Prints ",name:runs:run_ns+..." for each program that ran between the two
 * snapshots (ids ascend in both), "," then "-" if none did. */
static void print_prog_delta(const struct prog_stats *a, const struct prog_stats *b)
{
	size_t i = 0, shown = 0;

	printf(",");
	for (size_t j = 0; j < b->n; j++) {
		const struct prog_stat *p = &b->v[j];
		__u64 runs0 = 0, ns0 = 0;

		while (i < a->n && a->v[i].id < p->id)
			i++;
		if (i < a->n && a->v[i].id == p->id) {
			runs0 = a->v[i].runs;
			ns0 = a->v[i].run_ns;
		}
		if (p->runs <= runs0)
			continue;
		printf("%s%s:%llu:%llu", shown++ ? "+" : "", p->name,
		       (unsigned long long)(p->runs - runs0),
		       (unsigned long long)(p->run_ns - ns0));
	}
	if (!shown)
		printf("-");
}

static void parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{"ifname", 1, 0, 'i'},	  {"src-mac", 1, 0, 'm'},
		{"dst-mac", 1, 0, 'M'},	  {"src", 1, 0, 's'},
		{"dst", 1, 0, 'd'},	  {"dport", 1, 0, 'p'},
		{"sport", 1, 0, 'P'},	  {"flows", 1, 0, 'f'},
		{"count", 1, 0, 'c'},	  {"duration", 1, 0, 't'},
		{"batch", 1, 0, 'b'},	  {"cpu", 1, 0, 'C'},
		{"rx-netns", 1, 0, 'r'},  {"ack", 0, 0, 'a'},
		{"bpf-stats", 0, 0, 'S'}, {0, 0, 0, 0},
	};
	int c, fs = 0, fd = 0;
	bool have_src_mac = false, have_dst_mac = false;

	memset(o, 0, sizeof(*o));
	o->sport = 40000;
	o->flows = 1;
	o->count = 1ull << 40;
	o->duration = 1.0;
	o->batch = 64;
	o->cpu = -1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'i':
			o->ifname = optarg;
			break;
		case 'm':
			parse_mac(optarg, o->src_mac);
			have_src_mac = true;
			break;
		case 'M':
			parse_mac(optarg, o->dst_mac);
			have_dst_mac = true;
			break;
		case 's':
			fs = parse_ip(optarg, &o->src4, &o->src6);
			break;
		case 'd':
			fd = parse_ip(optarg, &o->dst4, &o->dst6);
			break;
		case 'p':
			o->dport = strtoul(optarg, NULL, 0);
			break;
		case 'P':
			o->sport = strtoul(optarg, NULL, 0);
			break;
		case 'f':
			o->flows = strtoul(optarg, NULL, 0);
			break;
		case 'c':
			o->count = strtoull(optarg, NULL, 0);
			break;
		case 't':
			o->duration = strtod(optarg, NULL);
			break;
		case 'b':
			o->batch = strtoul(optarg, NULL, 0);
			break;
		case 'C':
			o->cpu = atoi(optarg);
			break;
		case 'r':
			o->rx_netns = optarg;
			break;
		case 'a':
			o->ack = true;
			break;
		case 'S':
			o->bpf_stats = true;
			break;
		default:
			usage();
		}
	}
	if (!o->ifname || !have_src_mac || !have_dst_mac || !fs || fs != fd || !o->dport ||
	    o->dport > 65535 || !o->flows || !o->batch || o->batch > MAX_BATCH || o->duration <= 0)
		usage();
	o->family = fs;
}

int main(int argc, char **argv)
{
	static uint8_t frames[MAX_BATCH][FRAME_MAX];
	static struct mmsghdr msgs[MAX_BATCH];
	static struct iovec iovs[MAX_BATCH];
	struct sockaddr_ll sll = {0};
	uint64_t cpu_total0, cpu_task0, cpu_total1, cpu_task1, start, deadline, end;
	unsigned long long sent = 0, errors = 0, rx0 = 0, rx1 = 0, rst0 = 0, rst1 = 0;
	unsigned next_flow = 0;
	struct opts o;
	int sock, rxfd = -1, ksoftirqd = 0, stats_fd = -1;
	struct prog_stats stats0 = {0}, stats1 = {0};

	parse_args(argc, argv, &o);
	if (o.cpu >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(o.cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set))
			die("sched_setaffinity");
		ksoftirqd = find_ksoftirqd(o.cpu);
	}
	if (o.rx_netns)
		rxfd = open_rx_counter(o.rx_netns);

	/* Protocol 0: this socket only sends, it never receives a copy. */
	sock = socket(AF_PACKET, SOCK_RAW, 0);
	if (sock < 0)
		die("socket(AF_PACKET)");
	sll.sll_family = AF_PACKET;
	sll.sll_ifindex = if_nametoindex(o.ifname);
	if (!sll.sll_ifindex)
		die("if_nametoindex");
	sll.sll_protocol = htons(o.family == AF_INET ? ETH_P_IP : ETH_P_IPV6);
	sll.sll_halen = 6;
	memcpy(sll.sll_addr, o.dst_mac, 6);

	/* With more flows than the batch size, the batch is rebuilt per call. */
	for (unsigned i = 0; i < o.batch; i++) {
		iovs[i].iov_base = frames[i];
		iovs[i].iov_len = build_frame(&o, o.sport + (next_flow++ % o.flows), frames[i]);
		msgs[i].msg_hdr.msg_iov = &iovs[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
		msgs[i].msg_hdr.msg_name = &sll;
		msgs[i].msg_hdr.msg_namelen = sizeof(sll);
	}

	if (o.bpf_stats) {
		stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
		if (stats_fd < 0)
			die("bpf_enable_stats");
		read_prog_stats(&stats0);
	}
	cpu_total0 = read_cpu_busy();
	cpu_task0 = read_task_cpu(ksoftirqd);
	if (rxfd >= 0)
		rx0 = read_tcp_counter(rxfd, "InSegs");
	rst0 = read_tcp_counter(rxfd, "OutRsts");
	start = now_ns();
	deadline = start + (uint64_t)(o.duration * 1e9);
	while (sent < o.count) {
		unsigned want = o.batch;
		int n;

		if (o.count - sent < want)
			want = o.count - sent;
		n = sendmmsg(sock, msgs, want, 0);
		if (n < 0) {
			/* ENOBUFS: the device queue is full; count and retry. */
			if (errno != ENOBUFS && errno != EAGAIN && errno != EINTR)
				die("sendmmsg");
			errors++;
		} else {
			sent += n;
		}
		if (now_ns() >= deadline)
			break;
		if (o.flows > o.batch)
			for (unsigned i = 0; i < o.batch; i++)
				iovs[i].iov_len = build_frame(&o, o.sport + (next_flow++ % o.flows),
							      frames[i]);
	}
	end = now_ns();
	/* Let the receive softirq drain what is still queued before reading. */
	usleep(20000);
	if (rxfd >= 0)
		rx1 = read_tcp_counter(rxfd, "InSegs");
	rst1 = read_tcp_counter(rxfd, "OutRsts");
	cpu_task1 = read_task_cpu(ksoftirqd);
	cpu_total1 = read_cpu_busy();
	if (o.bpf_stats)
		read_prog_stats(&stats1);
	printf("%llu,%llu,%llu,%llu,%llu,%llu,%llu", sent, rx1 - rx0,
	       (unsigned long long)(end - start), (unsigned long long)(cpu_total1 - cpu_total0),
	       (unsigned long long)(cpu_task1 - cpu_task0), errors, rst1 - rst0);
	if (o.bpf_stats) {
		print_prog_delta(&stats0, &stats1);
		close(stats_fd);
		free(stats0.v);
		free(stats1.v);
	}
	printf("\n");
	return 0;
}
