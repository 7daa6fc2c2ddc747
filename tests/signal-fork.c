/*
 * signal-fork: fork() from a signal handler that interrupts a thread in the
 * middle of safefork_register/unregister.  The fork must neither deadlock
 * nor crash, and each child must find the stable registered buffer intact.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "harness.h"

#define STABLE (16 * 4096ul)
static char *stable, *churn;
static volatile int stop, forks, bad;

static void on_usr1(int sig)
{
	(void)sig;
	pid_t pid = fork();
	if (pid == 0)
		_exit(t_gen_of(stable, STABLE, NULL) == 9 ? 0 : 2);
	if (pid < 0 || t_wait(pid) != 0)
		bad++;
	forks++;
}

static void *churner(void *arg)
{
	(void)arg;
	while (!stop)
		for (size_t off = 0; off < (1 << 20); off += 4096 + 17) {
			t_register(churn + off, 3000, 0);
			t_unregister(churn + off, 3000);
		}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc > 1) {
		pthread_t th;
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_usr1;
		sigaction(SIGUSR1, &sa, NULL);
		t_watchdog(120);
		stable = t_map(STABLE);
		churn = t_map(2 << 20);
		t_fill(stable, STABLE, 9);
		T_CHECK(t_register(stable, STABLE, 0) == 0, "register");
		pthread_create(&th, NULL, churner, NULL);
		while (forks < 200) {
			int before = forks;
			pthread_kill(th, SIGUSR1);
			while (forks == before)
				usleep(100);
		}
		stop = 1;
		pthread_join(th, NULL);
		T_CHECK(bad == 0, "%d children saw a damaged buffer", bad);
		t_pass("200 forks from a signal handler interrupting registrations");
	}
	T_CHECK(t_run(argv[0], "run", 1, "copy", NULL, NULL, 0) == 0, "under the library");
	t_pass("fork from signal handlers works");
}
