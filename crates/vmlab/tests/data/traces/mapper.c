/* A small program whose address-space syscalls the lackey reader's test
 * log records: mmap (anonymous and of a file), mprotect, mremap, munmap,
 * brk. Built with `gcc -O1 -static -o mapper mapper.c`
 * (static: no dynamic loader, so the log stays small). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

int main(void) {
    char *a = mmap(0, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (a == MAP_FAILED) return 1;
    for (int i = 0; i < 3 * 4096; i += 4096) a[i] = (char)i;
    /* a store that crosses a page boundary */
    *(volatile int *)(a + 4094) = 0x01020304;
    char *b = mremap(a, 3 * 4096, 5 * 4096, MREMAP_MAYMOVE);
    if (b == MAP_FAILED) return 2;
    mprotect(b + 4096, 4096, PROT_READ);
    b[4 * 4096] = 1;
    munmap(b, 5 * 4096);
    int fd = open("/etc/hostname", O_RDONLY);
    if (fd >= 0) {
        volatile char *f = mmap(0, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
        if (f != MAP_FAILED) { (void)f[0]; munmap((void *)f, 4096); }
        close(fd);
    }
    void *cur = sbrk(0);
    brk((char *)cur + 8192);
    ((volatile char *)cur)[100] = 7;
    brk(cur);
    return 0;
}
