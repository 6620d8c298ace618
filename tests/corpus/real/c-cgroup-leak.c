/* Case c-cgroup-leak — label: LEAK.
 *
 * Why: four times a second the program mallocs 256 KiB, writes it and
 * keeps the pointer forever: ~1 MiB/s of anonymous memory that is never
 * freed. The corpus driver runs it inside its own child cgroup with a
 * 512 MiB memory limit (memory.max on cgroup v2, memory.limit_in_bytes on
 * v1), so what runs out first is the cgroup's memory, after about eight
 * minutes — then the kernel's OOM killer ends it — long before the
 * machine's RAM.
 *
 * Built with gcc at record time; stopped by SIGTERM from the corpus driver.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BLOCK (256 * 1024)

int main(void)
{
    struct timespec tick = {0, 250000000L};
    for (unsigned long i = 0;; i++) {
        char *b = malloc(BLOCK);
        if (!b)
            abort();
        memset(b, (int)(i & 0xff), BLOCK);
        /* b is deliberately never freed: this is the leak. */
        nanosleep(&tick, NULL);
    }
}
