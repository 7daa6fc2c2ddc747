/* probe.h - what the running kernel protects by itself (for "auto"). */
#ifndef SF_PROBE_H
#define SF_PROBE_H

struct sf_kernel {
	int early_cow;         /* fork copies pinned pages for the child (5.9+) */
	int hugetlb_early_cow; /* ... hugetlb pages too (5.12+) */
	int reliable_pins;     /* pinning a page shared with a child unshares it (5.19+) */
	const char *early_cow_how, *hugetlb_how, *probe_failed;
};

/* Probe once (outside the fork path: it forks a throw-away child). */
void sf_probe_ensure(void);
/* The findings, or the version's answer while the probe has not run. */
const struct sf_kernel *sf_kernel(void);
/* In auto mode: does a range with these flags need our copy?  Async-signal-safe. */
int sf_auto_policy(unsigned flags);
/* SAFEFORK_DEBUG / safefork --probe: the findings and what auto does, on stderr. */
void sf_probe_report(void);

#endif
