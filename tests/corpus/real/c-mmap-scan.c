/* Case c-mmap-scan — label: NOT A LEAK.
 *
 * Why: the program creates a 1.5 GiB sparse file next to itself, maps it
 * read-only and reads one byte of every page, front to back, over 90% of
 * the run (argv[1] seconds). Each page read brings a page-cache page into
 * the mapping, so its file-backed rss climbs to ~1.5 GiB — but that memory
 * is clean page cache the kernel can drop and re-read at any time, bounded
 * by the file's size; anonymous memory stays flat. Nothing the program
 * keeps can run out. (It unlinks the file right after opening it, so the
 * file disappears when the process ends, however it ends.)
 *
 * Built with gcc at record time; stopped by SIGTERM from the corpus driver.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define SIZE (1536UL << 20)
#define PAGE 4096UL
#define TICKS_PER_SECOND 20

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 60.0;
    const char *path = argc > 2 ? argv[2] : "c-mmap-scan.data";
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || unlink(path) != 0 || ftruncate(fd, SIZE) != 0) {
        perror("c-mmap-scan: creating the file");
        return 1;
    }
    /* Holes read as zeros: on ext4/xfs every read fault still allocates a
     * page-cache page, which is what file rss counts. */
    const volatile char *p = mmap(NULL, SIZE, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        perror("c-mmap-scan: mmap");
        return 1;
    }
    unsigned long pages = SIZE / PAGE;
    unsigned long ticks = (unsigned long)(0.9 * seconds * TICKS_PER_SECOND);
    if (ticks == 0)
        ticks = 1;
    unsigned long per_tick = (pages + ticks - 1) / ticks;
    struct timespec tick = {0, 1000000000L / TICKS_PER_SECOND};
    unsigned long sum = 0;
    for (unsigned long page = 0; page < pages;) {
        for (unsigned long j = 0; j < per_tick && page < pages; j++, page++)
            sum += p[page * PAGE];
        nanosleep(&tick, NULL);
    }
    /* Scanned: hold the mapping until stopped, like a reader that keeps
     * its index mapped. */
    for (;;)
        pause();
    return (int)sum;
}
