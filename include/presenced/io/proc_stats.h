/* proc_stats — figures about this process that every Prometheus exporter publishes under the
 * process_* names: CPU time, resident and virtual memory, open and allowed file descriptors,
 * start time. Read from the kernel (/proc/self, getrusage, getrlimit, the clocks) when /metrics
 * is asked for; Linux only (elsewhere the /proc figures are unknown).
 */
#ifndef PRESENCED_PROC_STATS_H
#define PRESENCED_PROC_STATS_H

#include <stddef.h>

/* A figure that could not be read is negative. */
typedef struct proc_stats {
    double cpu_seconds;    /* user + system CPU time used so far */
    double resident_bytes; /* resident set size */
    double virtual_bytes;  /* virtual memory size */
    double open_fds;       /* open file descriptors (as /proc/self/fd lists them) */
    double max_fds;        /* the soft RLIMIT_NOFILE */
    double start_time_s;   /* when the process started, seconds since the epoch */
} proc_stats;

/* Fills *out from the kernel. Never fails as a whole: what cannot be read is -1. Costs a few
 * small reads of /proc, plus a directory listing of /proc/self/fd on kernels before 6.2. */
void proc_stats_read(proc_stats *out);

/* The fields of /proc/PID/stat that proc_stats_read uses, parsed from `text` (len bytes, not
 * necessarily NUL-terminated): the start time in clock ticks after boot, the virtual size in
 * bytes and the resident size in pages. The command name (field 2) may hold spaces and
 * parentheses: fields are counted after its last ')'. Returns 0, or -1 when a field is missing or
 * not a number. Exported for the unit tests. */
typedef struct proc_stat_fields {
    unsigned long long start_ticks, vsize_bytes, rss_pages;
} proc_stat_fields;
int proc_stat_parse(const char *text, size_t len, proc_stat_fields *out);

#endif
