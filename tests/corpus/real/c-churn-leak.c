/* Case c-churn-leak — label: LEAK.
 *
 * Why: 128 times a second the program mallocs a 64 KiB block and writes
 * all of it; it keeps one block in four (a pointer saved in a list nobody
 * frees) and frees the other three. The kept quarter — ~2 MiB/s — stays
 * allocated for the life of the process although nothing uses it again,
 * so anonymous rss grows until the machine runs out. The freed blocks are
 * reused by later mallocs (below glibc's mmap threshold they live in the
 * main heap), so the churn does not grow rss by itself.
 *
 * Built with gcc at record time; stopped by SIGTERM from the corpus driver.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BLOCK (64 * 1024)
#define PER_SECOND 128

int main(void)
{
    size_t cap = 1024, n = 0;
    void **kept = malloc(cap * sizeof *kept);
    struct timespec tick = {0, 1000000000L / PER_SECOND};
    for (unsigned long i = 0;; i++) {
        char *b = malloc(BLOCK);
        if (!b)
            abort();
        memset(b, (int)(i & 0xff), BLOCK);
        if (i % 4 == 0) {
            if (n == cap) {
                cap *= 2;
                kept = realloc(kept, cap * sizeof *kept);
                if (!kept)
                    abort();
            }
            kept[n++] = b;
        } else {
            free(b);
        }
        nanosleep(&tick, NULL);
    }
}
