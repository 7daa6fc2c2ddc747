/* advice.c - the program's own fork advice, as disjoint sorted intervals per kind. */
#include "config.h"

#include <signal.h>
#include <string.h>
#include <sys/mman.h>

#include "advice.h"
#include "common.h"
#include "lock.h"
#include "msg.h"

#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18
#define MADV_KEEPONFORK 19
#endif

#define MAX_MARKS 1024

struct set {
	uintptr_t s[MAX_MARKS], e[MAX_MARKS];
	unsigned n;
};

static struct set marks[2];
static sf_lock_t lock = SF_LOCK_INIT;
static int once_full;

/* Remove [a, b) from the set (may split one interval into two). */
static void set_remove(struct set *t, uintptr_t a, uintptr_t b)
{
	for (unsigned i = 0; i < t->n; i++) {
		if (t->e[i] <= a || t->s[i] >= b)
			continue;
		if (t->s[i] < a && t->e[i] > b) { /* split */
			if (t->n == MAX_MARKS) {
				sf_msg_once(&once_full, "more than %d madvise fork-advice ranges; later ones are not "
					    "tracked", MAX_MARKS);
				t->e[i] = a; /* forget the tail rather than misrecord */
				continue;
			}
			memmove(&t->s[i + 2], &t->s[i + 1], (t->n - i - 1) * sizeof(t->s[0]));
			memmove(&t->e[i + 2], &t->e[i + 1], (t->n - i - 1) * sizeof(t->e[0]));
			t->s[i + 1] = b;
			t->e[i + 1] = t->e[i];
			t->e[i] = a;
			t->n++;
			return;
		}
		if (t->s[i] < a)
			t->e[i] = a;
		else if (t->e[i] > b)
			t->s[i] = b;
		else { /* inside: drop it */
			memmove(&t->s[i], &t->s[i + 1], (t->n - i - 1) * sizeof(t->s[0]));
			memmove(&t->e[i], &t->e[i + 1], (t->n - i - 1) * sizeof(t->e[0]));
			t->n--;
			i--;
		}
	}
}

static void set_add(struct set *t, uintptr_t a, uintptr_t b)
{
	unsigned i;

	set_remove(t, a, b);
	if (t->n == MAX_MARKS) {
		sf_msg_once(&once_full, "more than %d madvise fork-advice ranges; later ones are not tracked",
			    MAX_MARKS);
		return;
	}
	for (i = 0; i < t->n && t->s[i] < a; i++)
		;
	memmove(&t->s[i + 1], &t->s[i], (t->n - i) * sizeof(t->s[0]));
	memmove(&t->e[i + 1], &t->e[i], (t->n - i) * sizeof(t->e[0]));
	t->s[i] = a;
	t->e[i] = b;
	t->n++;
}

void sf_advice_note(uintptr_t start, uintptr_t end, int advice)
{
	sigset_t all, old;
	int kind = advice == MADV_DONTFORK || advice == MADV_DOFORK ? SF_MARK_DONTFORK : SF_MARK_WIPE;
	int set = advice == MADV_DONTFORK || advice == MADV_WIPEONFORK;

	/* Signals blocked: a handler that forks must not find the lock held by its own thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	sf_lock(&lock);
	if (set)
		set_add(&marks[kind], start, end);
	else
		set_remove(&marks[kind], start, end);
	sf_unlock(&lock);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

void sf_advice_unmarked(uintptr_t start, uintptr_t end, int kind,
			void (*fn)(uintptr_t start, uintptr_t end, void *arg), void *arg)
{
	const struct set *t = &marks[kind];
	uintptr_t pos = start;

	/* The engine holds its own lock with signals blocked; writers never take the engine lock. */
	sf_lock(&lock);
	for (unsigned i = 0; i < t->n && pos < end; i++) {
		if (t->e[i] <= pos)
			continue;
		if (t->s[i] >= end)
			break;
		if (t->s[i] > pos)
			fn(pos, t->s[i], arg);
		pos = t->e[i];
	}
	sf_unlock(&lock);
	if (pos < end)
		fn(pos, end, arg);
}
