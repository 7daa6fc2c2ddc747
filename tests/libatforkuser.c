/*
 * libatforkuser: a library loaded before the preloaded shim that registers
 * a pthread_atfork child handler in its constructor and reads a registered
 * buffer from it.  The handler must see the fork-time content: the shim's
 * own child handler has to run first.
 */
#include <pthread.h>
#include <stdint.h>
#include <stddef.h>

const volatile uint64_t *atforkuser_buf;
volatile uint64_t atforkuser_seen;

static void child_handler(void)
{
	atforkuser_seen = atforkuser_buf ? atforkuser_buf[0] >> 32 : 0;
}

__attribute__((constructor)) static void init(void)
{
	pthread_atfork(NULL, NULL, child_handler);
}
