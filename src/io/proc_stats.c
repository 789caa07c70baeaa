/* proc_stats — this process's CPU, memory, descriptors and start time (see
 * presenced/io/proc_stats.h). */
#include "presenced/io/proc_stats.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Reads up to cap-1 bytes of a small /proc file into buf (NUL-terminated). Returns the length or
 * -1. /proc files are generated on read: one read() returns them whole at these sizes. */
static long read_proc(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    if (n < 0)
        return -1;
    buf[n] = '\0';
    return (long)n;
}

/* Parses the decimal number at *p (after spaces) and moves *p past it. Returns false if there is
 * none. */
static bool next_number(const char **p, const char *end, unsigned long long *out)
{
    while (*p < end && **p == ' ')
        (*p)++;
    if (*p >= end || **p < '0' || **p > '9')
        return false;
    unsigned long long v = 0;
    for (; *p < end && **p >= '0' && **p <= '9'; (*p)++)
        v = v * 10u + (unsigned long long)(**p - '0');
    *out = v;
    return true;
}

/* Skips the field at *p (after spaces): any run of non-space bytes. */
static bool skip_field(const char **p, const char *end)
{
    while (*p < end && **p == ' ')
        (*p)++;
    if (*p >= end)
        return false;
    while (*p < end && **p != ' ')
        (*p)++;
    return true;
}

int proc_stat_parse(const char *text, size_t len, proc_stat_fields *out)
{
    const char *end = text + len, *p = NULL;
    for (const char *q = text; q < end; q++)
        if (*q == ')')
            p = q + 1;
    if (!p)
        return -1;
    /* After "pid (comm)", field 3 (state) is next; starttime, vsize and rss are fields 22-24. */
    for (int field = 3; field < 22; field++)
        if (!skip_field(&p, end))
            return -1;
    if (!next_number(&p, end, &out->start_ticks) || !next_number(&p, end, &out->vsize_bytes) ||
        !next_number(&p, end, &out->rss_pages))
        return -1;
    return 0;
}

/* Open descriptors: since Linux 6.2 the size of /proc/self/fd is their count; before, they are
 * counted by listing it (which costs a moment with 100k connections, once per scrape). The
 * listing's own descriptor is counted, as Prometheus clients count it. */
static double open_fds(void)
{
    struct stat st;
    if (stat("/proc/self/fd", &st) == 0 && st.st_size > 0)
        return (double)st.st_size;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    double n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* The wall-clock time at boot: the start time in /proc/self/stat counts from boot on the boot
 * clock (which includes suspend), so now minus that clock. */
static double boot_wall_s(void)
{
    struct timespec wall, boot;
    if (clock_gettime(CLOCK_REALTIME, &wall) != 0 || clock_gettime(CLOCK_BOOTTIME, &boot) != 0)
        return -1;
    return (double)(wall.tv_sec - boot.tv_sec) + (double)(wall.tv_nsec - boot.tv_nsec) / 1e9;
}

/* Start time, virtual and resident size from /proc/self/stat. */
static void from_stat(proc_stats *out)
{
    char buf[4096];
    proc_stat_fields f;
    long n = read_proc("/proc/self/stat", buf, sizeof(buf));
    if (n < 0 || proc_stat_parse(buf, (size_t)n, &f) < 0)
        return;
    long page = sysconf(_SC_PAGESIZE), ticks = sysconf(_SC_CLK_TCK);
    double boot = boot_wall_s();
    out->virtual_bytes = (double)f.vsize_bytes;
    if (page > 0)
        out->resident_bytes = (double)f.rss_pages * (double)page;
    if (ticks > 0 && boot >= 0)
        out->start_time_s = boot + (double)f.start_ticks / (double)ticks;
}

void proc_stats_read(proc_stats *out)
{
    *out = (proc_stats){-1, -1, -1, -1, -1, -1};
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        out->cpu_seconds = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        out->max_fds = (double)rl.rlim_cur;
    out->open_fds = open_fds();
    from_stat(out);
}
