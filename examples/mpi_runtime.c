/*
 * mpi_runtime.c - how an MPI runtime (or any program that pins memory
 * itself) uses libsafefork's explicit API, linked rather than preloaded.
 *
 * A runtime knows which of its buffers a device reads and writes directly:
 * it declares them with safefork_register() when it pins them and withdraws
 * them with safefork_unregister() before it unpins them.  Its own forks go
 * through safefork_fork() (a plain fork() from anywhere in the process is
 * protected as well when the library is preloaded; linked, the wrappers
 * apply only to calls that bind to the library, so a runtime calls
 * safefork_fork() for its own).  Here each rank:
 *
 *   1. maps a page-aligned "receive window" and registers it: this is the
 *      memory a NIC would DMA into (here MPI_Sendrecv writes it);
 *   2. receives its peer's data into it;
 *   3. forks a helper through safefork_fork(): the helper works on its
 *      snapshot of the window (here: checksums it and reports through a
 *      pipe), as a checkpointing or logging helper would, while the parent
 *      goes on writing the next data into the window at once.  The parent
 *      keeps its physical pages (what the device holds); the helper gets a
 *      private copy of the fork-time contents;
 *   4. unregisters the window when done with it.
 *
 * Build: configure builds it when it finds mpicc ("MPI example: yes").
 * Run:   mpirun -np 2 examples/mpi_runtime      (tests/runtimes runs it)
 * Each rank prints "rank R: snapshot ok ..." or a line saying what failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mpi.h>
#include <safefork.h>

#define WINDOW (1u << 20) /* 1 MiB: whole pages, as the README recommends */

static uint64_t checksum(const uint64_t *w, size_t n)
{
	uint64_t s = 0;
	for (size_t i = 0; i < n; i++)
		s = s * 31 + w[i];
	return s;
}

static int fail(int rank, const char *what)
{
	printf("rank %d: FAILED: %s (%s)\n", rank, what, strerror(errno));
	fflush(stdout);
	MPI_Abort(MPI_COMM_WORLD, 1);
	return 1;
}

int main(int argc, char **argv)
{
	int rank, size;
	size_t n = WINDOW / sizeof(uint64_t);

	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	int peer = (rank + 1) % size, from = (rank + size - 1) % size;

	/* 1. The window the device would write into: pinned, so registered. */
	uint64_t *window = mmap(NULL, WINDOW, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t out[1024];
	if (window == MAP_FAILED)
		return fail(rank, "mmap");
	if (safefork_register(window, WINDOW, 0) != 0)
		return fail(rank, "safefork_register");

	/* 2. Receive the previous rank's data into it (n words, value = its rank and the index). */
	for (size_t off = 0; off < n; off += 1024) {
		for (size_t i = 0; i < 1024; i++)
			out[i] = ((uint64_t)rank << 32) | (off + i);
		MPI_Sendrecv(out, 1024, MPI_UINT64_T, peer, 0, window + off, 1024, MPI_UINT64_T, from, 0,
			     MPI_COMM_WORLD, MPI_STATUS_IGNORE);
	}
	uint64_t at_fork = checksum(window, n);

	/* 3. A helper works on its snapshot while the parent writes the next data at once. */
	int p[2];
	if (pipe(p) != 0)
		return fail(rank, "pipe");
	pid_t pid = safefork_fork();
	if (pid < 0)
		return fail(rank, "safefork_fork");
	if (pid == 0) {
		/* The helper: no MPI calls in a forked child, only its own memory. */
		uint64_t sum = checksum(window, n);
		_exit(write(p[1], &sum, sizeof(sum)) == sizeof(sum) ? 0 : 1);
	}
	close(p[1]);
	for (size_t i = 0; i < n; i++) /* the next data, as the device would deliver it */
		window[i] = ~window[i];
	uint64_t helper_sum = 0;
	int st = 0;
	ssize_t got = read(p[0], &helper_sum, sizeof(helper_sum));
	close(p[0]);
	waitpid(pid, &st, 0);

	/* 4. Done with the window. */
	if (safefork_unregister(window, WINDOW) != 0)
		return fail(rank, "safefork_unregister");
	munmap(window, WINDOW);

	int ok = got == sizeof(helper_sum) && WIFEXITED(st) && WEXITSTATUS(st) == 0 && helper_sum == at_fork, all;
	MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
	struct safefork_stats fs;
	safefork_stats(&fs, sizeof(fs));
	printf("rank %d: snapshot %s: the helper saw the fork-time window (checksum %016llx), %llu bytes copied "
	       "for it; all ranks %s\n",
	       rank, ok ? "ok" : "WRONG", (unsigned long long)helper_sum, fs.bytes_copied, all ? "ok" : "not ok");
	MPI_Finalize();
	return all ? 0 : 1;
}
