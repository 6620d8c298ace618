/* Three allocation sites in three named functions; only leak_site keeps
 * what it allocates. Built by tests/tests/locate.rs with
 * -O0 -fno-omit-frame-pointer so every frame can be unwound.
 *
 * locate sees where memory is first touched, so the sites are laid out
 * for that to mean something: the leaked blocks (256 KiB) are above the
 * mmap threshold, each its own fresh mapping, while the churning blocks
 * (64 and 32 KiB) come from the heap, whose freed top is reused (trimming
 * is off) and faults no more after the first turn. Otherwise the
 * churning sites would touch new heap pages first and hand them to the
 * leaking one, which locate would rightly charge to them.
 *
 * Memory is touched with a loop in the allocating function itself: a
 * memset would fault inside libc, which has no frame pointer, and the
 * unwinder would skip the function. */
#include <malloc.h>
#include <stdlib.h>
#include <unistd.h>

#define LEAK_BLOCK (256 * 1024)
#define CHURN_BLOCK (64 * 1024)

__attribute__((noinline)) void leak_site(void) {
    char *p = malloc(LEAK_BLOCK);
    for (size_t i = 0; i < LEAK_BLOCK; i += 64)
        p[i] = (char)i; /* kept: never freed */
}

__attribute__((noinline)) void churn_site(void) {
    char *p = malloc(CHURN_BLOCK);
    for (size_t i = 0; i < CHURN_BLOCK; i += 64)
        p[i] = (char)i;
    free(p);
}

__attribute__((noinline)) void scratch_site(void) {
    char *p = calloc(1, CHURN_BLOCK / 2);
    for (size_t i = 0; i < CHURN_BLOCK / 2; i += 64)
        p[i] = 1;
    free(p);
}

int main(int argc, char **argv) {
    /* Seconds to run (default 3, fractions allowed); 25 MiB a second
     * leaked. */
    double seconds = argc > 1 ? atof(argv[1]) : 3;
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    for (int t = 0; t < seconds * 100; t++) {
        leak_site();
        for (int i = 0; i < 20; i++) {
            churn_site();
            scratch_site();
        }
        usleep(10000);
    }
    return 0;
}
