/*
 * signal-fork: fork() from a signal handler while registrations are in
 * progress: on a thread interrupted in the middle of
 * safefork_register/unregister, and on a thread that registers nothing
 * while 4 others are inside safefork_register.  No fork may deadlock
 * (watchdog) or crash, each child must find the stable registered buffer
 * intact, and the device holding that buffer must see the parent's last
 * write (coherent); without the library, or with it off, it is stale.
 * 200 forks under make check; STRESS_SCALE x 2000 under make check-stress.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "stress/stress.h"

#define STABLE (16 * 4096ul)
#define CHURNERS 4
static char *stable, *churn;
static volatile int stop, forks, bad;

static void on_usr1(int sig)
{
	(void)sig;
	pid_t pid = fork();
	/*
	 * Not _exit(): AddressSanitizer calls __asan_handle_no_return before a
	 * noreturn call, which allocates, and its allocator's lock may belong
	 * to a parent thread that was inside malloc at the fork.
	 */
	if (pid == 0)
		syscall(SYS_exit_group, t_gen_of(stable, STABLE, NULL) == 9 ? 0 : 2);
	if (pid < 0 || t_wait(pid) != 0)
		bad++;
	forks++;
}

static void *churner(void *arg)
{
	size_t first = (size_t)(uintptr_t)arg * 4096;
	while (!stop)
		for (size_t off = first; off < (1 << 20); off += 4096 + 17) {
			t_register(churn + off, 3000, 0);
			t_unregister(churn + off, 3000);
		}
	return NULL;
}

/* A thread that registers nothing: the handler forks on it while the others are inside register. */
static void *bystander(void *arg)
{
	(void)arg;
	while (!stop)
		usleep(50);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc > 1) {
		pthread_t th[CHURNERS], by;
		struct sigaction sa;
		struct t_device dev;
		int n = getenv("STRESS_SCALE") ? (int)s_n(2000, 20) : 200;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_usr1;
		sigaction(SIGUSR1, &sa, NULL);
		s_watchdog(120);
		stable = t_map(STABLE);
		churn = t_map(2 << 20);
		t_fill(stable, STABLE, 9);
		T_CHECK(t_register(stable, STABLE, 0) == 0, "register");
		t_dev_attach(&dev, stable, STABLE);
		for (int i = 0; i < CHURNERS; i++)
			pthread_create(&th[i], NULL, churner, (void *)(uintptr_t)i);
		pthread_create(&by, NULL, bystander, NULL);
		while (forks < n) {
			int before = forks;
			/* alternately the interrupted registering thread itself forks, and a bystander does */
			pthread_kill(forks % 2 ? by : th[forks / 2 % CHURNERS], SIGUSR1);
			while (forks == before)
				usleep(100);
		}
		stop = 1;
		for (int i = 0; i < CHURNERS; i++)
			pthread_join(th[i], NULL);
		pthread_join(by, NULL);
		T_CHECK(bad == 0, "%d children saw a damaged buffer", bad);
		t_fill(stable, STABLE, 10);
		char seen[STABLE];
		t_dev_read(&dev, seen);
		size_t stale = s_stale_pages(seen, STABLE, 10);
		printf("figures: %d forks from signal handlers (half on threads inside safefork_register, half beside "
		       "%d of them); %zu of %lu device pages stale\n", n, CHURNERS, stale, STABLE / 4096);
		fflush(stdout);
		return stale ? T_STALE : T_COHERENT;
	}
	int fail = 0;
	fail |= t_expect(argv[0], "run", 1, "copy", T_COHERENT);
	fail |= t_expect(argv[0], "run", 1, "off", T_STALE);
	fail |= t_expect(argv[0], "run", 0, NULL, T_STALE);
	if (fail)
		return T_FAIL;
	t_pass("fork from signal handlers works, on the registering thread and beside it");
}
