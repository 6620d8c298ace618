/* Case c-arena-plateau — label: NOT A LEAK.
 *
 * Why: four threads each own 128 slots holding blocks of random size
 * (1–256 KiB, ~16 MiB per thread), empty at start. Every 40 ms a thread
 * frees a random slot and mallocs a new block of another random size,
 * writing all of it. The live set is bounded (at most 4 × 32 MiB, ~64 MiB
 * on average); glibc gives each thread its own arena, and rss rises for
 * ~20 s while the slots fill and fragmentation settles, then plateaus.
 * Freed memory is reused, not lost: nothing runs out.
 *
 * Built with gcc -pthread at record time; stopped by SIGTERM from the
 * corpus driver.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define THREADS 4
#define SLOTS 128
#define MAX_BLOCK (256 * 1024)

static void *churn(void *arg)
{
    unsigned int seed = (unsigned int)(unsigned long)arg;
    char *slot[SLOTS] = {0};
    struct timespec tick = {0, 40000000L};
    for (;;) {
        int k = rand_r(&seed) % SLOTS;
        size_t size = 1024 + (size_t)rand_r(&seed) % (MAX_BLOCK - 1024);
        free(slot[k]);
        slot[k] = malloc(size);
        if (!slot[k])
            abort();
        memset(slot[k], k, size);
        nanosleep(&tick, NULL);
    }
    return NULL;
}

int main(void)
{
    pthread_t t[THREADS];
    for (unsigned long i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, churn, (void *)(i + 11));
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    return 0;
}
