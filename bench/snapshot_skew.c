/*
 * snapshot_skew: what a child sees of a registered range that another
 * parent thread writes during the fork, with the kernel's fork
 * (SAFEFORK_MODE=off) and with userspace early COW (copy).
 *
 * A writer thread sweeps a 4 MiB buffer, storing an increasing sweep number
 * in every 64-byte line.  Each child reports how many distinct sweep numbers
 * its copy holds and the spread between the oldest and newest, and whether
 * any 8-byte word is torn.  Run it twice:
 *   SAFEFORK_MODE=off  LD_PRELOAD=.../libsafefork.so bench/snapshot_skew
 *   SAFEFORK_MODE=copy LD_PRELOAD=.../libsafefork.so bench/snapshot_skew
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define LEN (4ul << 20)
#define LINES (LEN / 64)
static volatile uint64_t *buf;
static volatile int stop;

static void *writer(void *arg)
{
	(void)arg;
	for (uint64_t sweep = 1; !stop; sweep++)
		for (size_t l = 0; l < LINES; l++)
			buf[l * 8] = sweep;
	return NULL;
}

int main(void)
{
	int (*reg)(const void *, size_t, unsigned) = (int (*)(const void *, size_t, unsigned))dlsym(RTLD_DEFAULT, "safefork_register");
	const char *mode = getenv("SAFEFORK_MODE");
	pthread_t th;
	int fds[2];
	double sum_distinct = 0, sum_spread = 0;
	unsigned long max_spread = 0, torn = 0;
	const int forks = 50;

	buf = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset((void *)buf, 0, LEN);
	if (reg)
		reg((const void *)buf, LEN, 0);
	pthread_create(&th, NULL, writer, NULL);
	usleep(20000);
	for (int f = 0; f < forks; f++) {
		if (pipe(fds) < 0)
			return 1;
		pid_t pid = fork();
		if (pid == 0) {
			uint64_t lo = UINT64_MAX, hi = 0, distinct = 1, t = 0;
			for (size_t l = 0; l < LINES; l++) {
				uint64_t v = buf[l * 8];
				if (v < lo) lo = v;
				if (v > hi) hi = v;
				if (l && v != buf[(l - 1) * 8])
					distinct++;
				if (v > (1ull << 40))
					t++;
			}
			uint64_t r[3] = { distinct, hi - lo, t };
			if (write(fds[1], r, sizeof(r)) != sizeof(r))
				_exit(1);
			_exit(0);
		}
		uint64_t r[3];
		if (read(fds[0], r, sizeof(r)) != sizeof(r))
			return 1;
		waitpid(pid, NULL, 0);
		close(fds[0]);
		close(fds[1]);
		sum_distinct += (double)r[0];
		sum_spread += (double)r[1];
		if (r[1] > max_spread)
			max_spread = r[1];
		torn += r[2];
	}
	stop = 1;
	pthread_join(th, NULL);
	printf("mode=%-5s %d forks of a 4 MiB range under a sweeping writer: child copy holds %.1f runs of "
	       "sweep numbers on average, spread %.2f sweeps (max %lu), torn words %lu\n",
	       mode ? mode : "unset", forks, sum_distinct / forks, sum_spread / forks, max_spread, torn);
	return 0;
}
