/*
 * report.c - once-per-call-site reports (report.h says when).
 *
 * The fork path only counts ranges and captures raw return addresses into
 * `cur` (guarded by the engine lock); the parent copies it to its stack
 * before the lock goes.  Emitting (deduplicating, naming frames, formatting
 * into memory mapped for the occasion, one write) happens after the fork
 * with no lock of ours held: the loader's lock that naming takes may be held
 * by a thread that is itself forking (a constructor that forks), which waits
 * for the engine lock.
 */
#include "config.h"

#include <errno.h>
#include <gnu/libc-version.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "callstack.h"
#include "common.h"
#include "engine.h"
#include "envparse.h"
#include "msg.h"
#include "probe.h"
#include "ranges.h"
#include "report.h"
#include "sysmem.h"

enum { KIND_FORK = 0, KIND_SPAWN, KIND_UNPROTECTED };

static int asked; /* SAFEFORK_REPORT=1, or SAFEFORK_LOG set (and SAFEFORK_REPORT not 0) */
static struct sf_report cur;

int sf_report_wanted(void)
{
	return asked || __atomic_load_n(&sf_mode, __ATOMIC_RELAXED) == SAFEFORK_MODE_LOG;
}

/*
 * The unwinder is loaded when reports are on (start-up, or a change to log
 * mode), never in a quiet process: it would stay mapped in the program and
 * in every child.  A fallback reported unasked names its immediate caller.
 */
void sf_report_ready(void)
{
	if (sf_report_wanted())
		sf_stack_load();
}

void sf_report_init(void)
{
	const char *v = getenv("SAFEFORK_REPORT"), *log = getenv("SAFEFORK_LOG");

	int r = sf_parse_debug(v); /* the same 0/1 grammar as SAFEFORK_DEBUG */

	if (r < 0)
		sf_msg("SAFEFORK_REPORT=%s is not 0 or 1; ignored", v);
	/* 1 asks; 0 refuses even with SAFEFORK_LOG set; unset, a destination asks */
	asked = r == 1 || (!(v && !strcmp(v, "0")) && log && *log);
	sf_report_ready();
}

/* ---- in the fork path, under the engine lock ---- */

/* Only for a fork that may be reported: a quiet fork does not unwind. */
static void capture(void)
{
	if (cur.captured || cur.entry == SF_ENTRY_PROBE)
		return;
	cur.captured = 1;
	cur.nframes = sf_stack_capture(cur.frames, SF_STACK_MAX);
}

void sf_report_begin(enum safefork_entry entry, void *caller)
{
	cur.entry = entry;
	cur.mode = __atomic_load_n(&sf_mode, __ATOMIC_RELAXED);
	cur.kind = KIND_FORK;
	cur.fallback = cur.by_shim = 0;
	cur.caller = caller;
	cur.ranges = cur.bytes = cur.logged = cur.logged_bytes = cur.logged_kpin = cur.logged_kpin_bytes = 0;
	cur.prot = cur.prot_bytes = cur.left = cur.left_bytes = cur.copied = 0;
	cur.nframes = cur.captured = 0;
	if (sf_report_wanted())
		capture();
}

void sf_report_range(unsigned int flags, int what, size_t len)
{
	cur.ranges++;
	cur.bytes += len;
	if (what == SF_REP_LOGGED) {
		cur.logged++;
		cur.logged_bytes += len;
		capture();
		if (flags & SAFEFORK_KERNEL_PIN) {
			cur.logged_kpin++;
			cur.logged_kpin_bytes += len;
		}
	} else if (what == SF_REP_PROTECTED) {
		cur.prot++;
		cur.prot_bytes += len;
	} else {
		cur.left++;
		cur.left_bytes += len;
	}
}

void sf_report_fallback(void)
{
	cur.fallback = 1;
	capture();
}

int sf_report_end(struct sf_report *out, size_t copied)
{
	if (cur.entry == SF_ENTRY_PROBE || !(cur.logged || cur.fallback || sf_report_wanted()))
		return 0;
	cur.copied = copied;
	memcpy(out, &cur, offsetof(struct sf_report, frames) + (size_t)cur.nframes * sizeof(cur.frames[0]));
	return 1;
}

/* ---- after the fork ---- */

/* Reported sites: hashes of (kind, entry, chain), inserted lock-free. */
#define SITES 512
static uint64_t sites[SITES];
static int once_full;

static int first_time(uint64_t key)
{
	key |= 1; /* 0 marks a free slot */
	for (size_t i = 0, h = (size_t)(key % SITES); i < SITES; i++, h = (h + 1) % SITES) {
		uint64_t expect = 0;
		if (__atomic_load_n(&sites[h], __ATOMIC_RELAXED) == key)
			return 0;
		if (__atomic_compare_exchange_n(&sites[h], &expect, key, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
			return 1;
		if (expect == key)
			return 0;
	}
	sf_msg_once(&once_full, "%d call sites reported; forks from further sites are not reported", SITES);
	return 0;
}

static uint64_t fnv(uint64_t h, uint64_t v)
{
	for (int i = 0; i < 8; i++, v >>= 8)
		h = (h ^ (v & 0xff)) * 0x100000001b3ull;
	return h;
}

/*
 * Keep the program's part of the chain: from the entry point's caller on
 * (the frames before it are ours and the C library's fork machinery), or,
 * when the caller is unknown (a C-library-internal fork), from the first
 * frame after the last one of ours.
 */
static void trim(struct sf_report *r)
{
	int from = -1;

	for (int i = 0; r->caller && i < r->nframes; i++)
		if (r->frames[i] == r->caller) {
			from = i;
			break;
		}
	if (from < 0)
		for (int i = r->nframes - 1; i >= 0; i--)
			if (sf_stack_ours(r->frames[i])) {
				from = i + 1;
				break;
			}
	if (from > 0) {
		memmove(r->frames, r->frames + from, (size_t)(r->nframes - from) * sizeof(r->frames[0]));
		r->nframes -= from;
	}
	if (!r->nframes && r->caller) { /* no unwinder: the immediate caller */
		r->frames[0] = r->caller;
		r->nframes = 1;
	}
}

/* An output buffer mapped for one report (no malloc; a report is rare: once per site). */
struct buf {
	char *p;
	size_t n, cap;
};
#define BUF_SIZE ((size_t)32 * 1024)

static void add(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(struct buf *b, const char *fmt, ...)
{
	va_list ap;

	if (b->n + 1 >= b->cap)
		return;
	va_start(ap, fmt);
	b->n += sf_vformat(b->p + b->n, b->cap - b->n, fmt, ap);
	va_end(ap);
}

/* "name":"escaped value" */
static void add_str(struct buf *b, const char *name, const char *v)
{
	add(b, "\"%s\":\"", name);
	if (b->n + 1 < b->cap)
		b->n += sf_json_escape(b->p + b->n, b->cap - b->n, v);
	add(b, "\"");
}

static const char *yes(int v)
{
	return v ? "yes" : "NO";
}

/* The verdict: one word for JSON, and the headline. */
static const char *headline(const struct sf_report *r, char *h, size_t size, size_t *unsafe, size_t *unsafe_bytes)
{
	const struct sf_kernel *k = sf_kernel();
	int covers = k->early_cow && k->hugetlb_early_cow; /* as auto decides (probe.c) */
	const char *entry = sf_entry_name(r->entry), *mode = sf_mode_name(r->mode), *verdict;
	int pid = (int)getpid();
	char kern[300];

	*unsafe = r->logged - (covers ? r->logged_kpin : 0);
	*unsafe_bytes = r->logged_bytes - (covers ? r->logged_kpin_bytes : 0);
	sf_format(kern, sizeof(kern), "kernel: early COW of pinned pages %s, of hugetlb pages %s (%s)", yes(k->early_cow),
		  yes(k->hugetlb_early_cow), k->early_cow_how);
	if (r->kind == KIND_SPAWN) {
		int posix = r->entry == SAFEFORK_ENTRY_POSIX_SPAWN;
		const char *libc = gnu_get_libc_version();
		if (r->by_shim)
			sf_format(h, size, "spawn in pid %d via %s (mode %s): %zu registered ranges (%zu bytes); safe: "
				  "safefork's spawn shim created the child vfork-style (it shares the parent's memory "
				  "until it execs) where glibc %s would fork copy-on-write", pid, entry, mode, r->ranges,
				  r->bytes, libc);
		else
			sf_format(h, size, "spawn in pid %d via %s (mode %s): %zu registered ranges (%zu bytes); safe "
				  "with this C library (glibc %s creates the child vfork-style: it shares the parent's "
				  "memory until it execs) but UNSAFE with glibc before %s, which forks copy-on-write "
				  "here%s", pid, entry, mode, r->ranges, r->bytes, libc, posix ? "2.24" : "2.29",
				  posix ? " (with file actions or attributes)" : " (RHEL 8 and older)");
		return "vfork";
	}
	if (r->kind == KIND_UNPROTECTED) {
		sf_format(h, size, "unsafe fork in pid %d via %s (mode %s): a raw clone with a stack of its own cannot "
			  "be protected; %zu registered ranges (%zu bytes) shared copy-on-write with the child; %s",
			  pid, entry, mode, r->ranges, r->bytes, kern);
		*unsafe = r->ranges;
		*unsafe_bytes = r->bytes;
		return "unprotected";
	}
	if (*unsafe) {
		verdict = "unsafe";
		sf_format(h, size, "unsafe fork in pid %d via %s (mode %s): %zu of %zu registered ranges (%zu of %zu "
			  "bytes) shared copy-on-write with the child, whose pages the parent loses to it at its next "
			  "write while the device keeps the old ones; %zu protected; %s%s", pid, entry, mode, *unsafe,
			  r->ranges, *unsafe_bytes, r->bytes, r->prot, kern,
			  r->logged_kpin && !covers ? "; it protects none of them" : "");
	} else {
		verdict = r->fallback ? "degraded" : r->prot ? "protected" : "kernel";
		sf_format(h, size, "%sfork in pid %d via %s (mode %s): %zu registered ranges (%zu bytes): %zu protected "
			  "(%zu bytes copied for the child), %zu left to the kernel%s%s; %s",
			  r->fallback ? "degraded " : "", pid, entry, mode, r->ranges, r->bytes, r->prot, r->copied,
			  r->left + r->logged, r->fallback ? "; protection had to fall back (said above)" : "",
			  r->logged ? " (the logged ones pinned through it)" : "", kern);
	}
	return verdict;
}

static void frame_text(struct buf *b, int i, void *ip)
{
	struct sf_frame_name f;

	sf_stack_name(ip, &f);
	if (f.symbol[0])
		add(b, "safefork:   #%d %p %s+%lx (%s)\n", i, ip, f.symbol, f.offset, f.object ? f.object : "?");
	else
		add(b, "safefork:   #%d %p (%s+%lx)\n", i, ip, f.object ? f.object : "?", f.offset);
}

static void frame_json(struct buf *b, int i, void *ip)
{
	struct sf_frame_name f;

	sf_stack_name(ip, &f);
	add(b, "%s{\"ip\":\"%p\",", i ? "," : "", ip);
	add_str(b, "symbol", f.symbol);
	add(b, ",\"offset\":%lu,", f.offset);
	add_str(b, "object", f.object ? f.object : "");
	add(b, "}");
}

static void format_report(struct buf *b, const struct sf_report *r)
{
	char h[1024];
	size_t unsafe, unsafe_bytes;
	const char *verdict = headline(r, h, sizeof(h), &unsafe, &unsafe_bytes);

	if (!sf_log_json()) {
		add(b, "safefork: %s\n", h);
		for (int i = 0; i < r->nframes; i++)
			frame_text(b, i, r->frames[i]);
		if (!r->nframes)
			add(b, "safefork:   (called from inside the C library; no unwinder: %s)\n", sf_stack_method());
		else if (r->nframes == 1 && !sf_stack_loaded())
			add(b, "safefork:   (%s)\n", sf_stack_method());
		return;
	}
	const struct sf_kernel *k = sf_kernel();
	struct utsname u;
	if (uname(&u) < 0)
		strcpy(u.release, "?");
	add(b, "{\"event\":\"%s\",", r->kind == KIND_SPAWN ? "spawn" : "fork");
	b->n += sf_json_time(b->p + b->n, b->cap - b->n);
	add(b, ",\"pid\":%d,", (int)getpid());
	add_str(b, "program", program_invocation_short_name);
	add(b, ",\"entry\":\"%s\",\"mode\":\"%s\",\"verdict\":\"%s\",\"fallback\":%s,", sf_entry_name(r->entry),
	    sf_mode_name(r->mode), verdict, r->fallback ? "true" : "false");
	add(b, "\"ranges\":%zu,\"bytes\":%zu,\"unsafe_ranges\":%zu,\"unsafe_bytes\":%zu,\"logged_ranges\":%zu,"
	    "\"logged_bytes\":%zu,\"protected_ranges\":%zu,\"protected_bytes\":%zu,\"kernel_ranges\":%zu,"
	    "\"kernel_bytes\":%zu,\"bytes_copied\":%zu,", r->ranges, r->bytes, unsafe, unsafe_bytes, r->logged,
	    r->logged_bytes, r->prot, r->prot_bytes, r->left + r->logged - unsafe,
	    r->left_bytes + r->logged_bytes - unsafe_bytes, r->copied);
	add(b, "\"kernel\":{");
	add_str(b, "release", u.release);
	add(b, ",\"early_cow\":%s,\"hugetlb_early_cow\":%s,\"reliable_pins\":%s,", k->early_cow ? "true" : "false",
	    k->hugetlb_early_cow ? "true" : "false", k->reliable_pins ? "true" : "false");
	add_str(b, "how", k->early_cow_how);
	add(b, "},");
	add_str(b, "libc", gnu_get_libc_version());
	if (r->kind == KIND_SPAWN) /* the oldest glibc that creates this child vfork-style */
		add(b, ",\"libc_vfork_since\":\"%s\"", r->entry == SAFEFORK_ENTRY_POSIX_SPAWN ? "2.24" : "2.29");
	add(b, ",");
	add_str(b, "unwinder", sf_stack_method());
	add(b, ",");
	add_str(b, "summary", h);
	add(b, ",\"backtrace\":[");
	for (int i = 0; i < r->nframes; i++)
		frame_json(b, i, r->frames[i]);
	add(b, "]}\n");
}

void sf_report_emit(struct sf_report *r)
{
	int saved = errno;

	trim(r);
	uint64_t key = fnv(0xcbf29ce484222325ull, ((uint64_t)r->kind << 40) | ((uint64_t)r->fallback << 32) | r->entry);
	for (int i = 0; i < r->nframes; i++)
		key = fnv(key, (uintptr_t)r->frames[i]);
	if (!first_time(key)) {
		errno = saved;
		return;
	}
	char small[3072];
	struct buf b = { sf_map(BUF_SIZE), 0, BUF_SIZE };
	if (!b.p) { /* no memory (RLIMIT_AS...): the headline and the innermost frames, on the stack */
		b = (struct buf){ small, 0, sizeof(small) };
		if (r->nframes > 2)
			r->nframes = 2;
	}
	format_report(&b, r);
	if (b.n && b.p[b.n - 1] != '\n') { /* cut short: keep whole lines */
		while (b.n && b.p[b.n - 1] != '\n')
			b.n--;
	}
	sf_log_write(b.p, b.n);
	if (b.p != small)
		sf_munmap(b.p, BUF_SIZE);
	errno = saved;
}

/* ---- outside any fork path ---- */

static void report_now(enum safefork_entry entry, void *caller, int kind, int by_shim)
{
	struct sf_report r;
	size_t count[SF_SRC_NR], bytes[SF_SRC_NR];

	memset(&r, 0, offsetof(struct sf_report, frames));
	r.entry = entry;
	r.mode = __atomic_load_n(&sf_mode, __ATOMIC_RELAXED);
	r.kind = (unsigned char)kind;
	r.by_shim = (unsigned char)by_shim;
	r.fallback = kind == KIND_UNPROTECTED;
	r.caller = caller;
	sf_ranges_stats(count, bytes);
	for (int i = 0; i < SF_SRC_NR; i++) {
		r.ranges += count[i];
		r.bytes += bytes[i];
	}
	r.nframes = sf_stack_capture(r.frames, SF_STACK_MAX);
	sf_report_emit(&r);
}

void sf_report_spawn(enum safefork_entry entry, void *caller, int by_shim)
{
	if (sf_ranges_live() && sf_report_wanted())
		report_now(entry, caller, KIND_SPAWN, by_shim);
}

void sf_report_unprotected(enum safefork_entry entry, void *caller)
{
	if (sf_ranges_live())
		report_now(entry, caller, KIND_UNPROTECTED, 0);
}
