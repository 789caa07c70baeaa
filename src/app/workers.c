/* The workers' supervisor: no libuv here. A loop copied into a forked child keeps sharing its
 * epoll and signal pipe with the parent, so the supervisor waits with poll() on a signalfd and
 * the workers' pipes, and each worker builds its own loop from scratch. */
#include "presenced/app/workers.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "presenced/io/host.h"
#include "presenced/io/log.h"
#include "presenced/io/reuseport.h"
#include "presenced/io/sysd.h"

#define WORKERS_STATUS_MAX 160
#define WORKERS_MSG_MAX 600
/* A worker silent for this long, at least, is hung (only watched under a systemd watchdog). */
#define WORKERS_HUNG_MIN_MS 3000
/* Beyond shutdown_timeout, how long a stopping worker may take before SIGKILL. */
#define WORKERS_STOP_SLACK_MS 5000

typedef struct worker {
    pid_t pid;                 /* 0: not running */
    int fd;                    /* read end of its pipe, -1 when not running */
    bool ready;                /* said READY=1 since it started */
    bool hung;                 /* killed for silence: not again */
    uint64_t alive_ms;         /* last message, or the start */
    uint64_t restart_ms;       /* when to start it again; 0: not planned */
    unsigned failed_starts;    /* exits in a row before READY */
    size_t blen;               /* bytes of a message not yet complete */
    char buf[WORKERS_MSG_MAX]; /* messages end with NUL */
} worker;

typedef struct sup {
    const cfg *c;
    workers_main_fn main_fn;
    void *ud;
    uint32_t n;
    pid_t self;
    int sigfd;
    int listen[REUSEPORT_MAX];
    worker w[REUSEPORT_MAX];
    sigset_t blocked, old_mask;
    bool stopping;
    bool ready_sent;
    bool reloaded;
    int exit_code;
    uint64_t watchdog_ms; /* systemd's period, 0: none */
    uint64_t next_watchdog_ms;
    uint64_t stop_deadline_ms;
} sup;

static sup *child_sup; /* in a worker: what workers_child_ready_for_signals() restores */

static void describe_status(int status, char *out, size_t cap)
{
    if (WIFEXITED(status))
        snprintf(out, cap, "exit=%d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(out, cap, "signal=%d", WTERMSIG(status));
    else
        snprintf(out, cap, "status=%d", status);
}

/* In the new process: drop what belongs to the supervisor and the other workers, then run the
 * daemon on member `i` of the group. Never returns. */
static void run_child(sup *s, uint32_t i, int notify_fd)
{
    /* The worker goes when the supervisor goes, however it goes. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != s->self)
        _exit(1);
    close(s->sigfd);
    for (uint32_t j = 0; j < s->n; j++) {
        if (s->w[j].fd >= 0)
            close(s->w[j].fd);
        if (j != i)
            close(s->listen[j]);
    }
    /* Only the supervisor may talk to systemd. */
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    /* SIGCHLD was only blocked for the signalfd; the others wait for the daemon's handlers. */
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_UNBLOCK, &chld, NULL);
    child_sup = s;
    char field[32];
    snprintf(field, sizeof(field), "worker=%u", i);
    log_set_context(field);
    workers_child w = {.index = i,
                       .count = s->n,
                       .listen_fd = s->listen[i],
                       .notify_fd = notify_fd,
                       .reload = s->reloaded};
    exit(s->main_fn(&w, s->ud));
}

void workers_child_ready_for_signals(void)
{
    if (child_sup)
        sigprocmask(SIG_SETMASK, &child_sup->old_mask, NULL);
}

static void start_worker(sup *s, uint32_t i)
{
    worker *w = &s->w[i];
    int p[2];
    w->restart_ms = 0;
    if (pipe(p) < 0) {
        log_error("cannot start a worker", "index=%u err=\"%s\"", i, strerror(errno));
        w->restart_ms = host_mono_ms() + WORKERS_RESTART_MS;
        return;
    }
    pid_t pid = fork();
    if (pid < 0) {
        log_error("cannot start a worker", "index=%u err=\"%s\"", i, strerror(errno));
        close(p[0]);
        close(p[1]);
        w->restart_ms = host_mono_ms() + WORKERS_RESTART_MS;
        return;
    }
    if (pid == 0) {
        close(p[0]);
        run_child(s, i, p[1]);
    }
    close(p[1]);
    int fl = fcntl(p[0], F_GETFL);
    fcntl(p[0], F_SETFL, fl | O_NONBLOCK);
    w->pid = pid;
    w->fd = p[0];
    w->ready = w->hung = false;
    w->blen = 0;
    w->alive_ms = host_mono_ms();
    log_info("worker started", "index=%u pid=%d", i, (int)pid);
}

static void send_all(sup *s, int sig)
{
    for (uint32_t i = 0; i < s->n; i++)
        if (s->w[i].pid > 0)
            kill(s->w[i].pid, sig);
}

static void begin_stop(sup *s, int sig, int exit_code)
{
    if (s->stopping)
        return;
    s->stopping = true;
    s->exit_code = exit_code;
    log_info("shutting down", "signal=%d", sig);
    sysd_notify("STOPPING=1\nSTATUS=shutting down");
    for (uint32_t i = 0; i < s->n; i++)
        s->w[i].restart_ms = 0;
    send_all(s, sig);
    s->stop_deadline_ms =
        host_mono_ms() + (uint64_t)s->c->shutdown_timeout * 1000 + WORKERS_STOP_SLACK_MS;
}

/* READY=1 to systemd once every worker has said it is ready. */
static void check_ready(sup *s)
{
    if (s->ready_sent || s->stopping)
        return;
    for (uint32_t i = 0; i < s->n; i++)
        if (!s->w[i].ready)
            return;
    s->ready_sent = true;
    char msg[96];
    snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%u workers listening, store available", s->n);
    sysd_notify(msg);
    log_info("workers ready", "workers=%u", s->n);
}

/* One message of worker `i`: the lines of an sd_notify message. */
static void on_message(sup *s, uint32_t i, char *msg)
{
    worker *w = &s->w[i];
    w->alive_ms = host_mono_ms();
    for (char *save = NULL, *line = strtok_r(msg, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        if (strcmp(line, "READY=1") == 0) {
            w->ready = true;
            w->failed_starts = 0;
        } else if (strncmp(line, "STATUS=", 7) == 0 && s->ready_sent && !s->stopping) {
            char status[WORKERS_STATUS_MAX + 32];
            snprintf(status, sizeof(status), "STATUS=worker %u: %.*s", i, WORKERS_STATUS_MAX,
                     line + 7);
            sysd_notify(status);
        }
    }
}

static void read_worker(sup *s, uint32_t i)
{
    worker *w = &s->w[i];
    for (;;) {
        ssize_t n = read(w->fd, w->buf + w->blen, sizeof(w->buf) - w->blen);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            /* EOF: the worker is gone; SIGCHLD tells how. */
            if (n == 0) {
                close(w->fd);
                w->fd = -1;
            }
            return;
        }
        w->blen += (size_t)n;
        size_t start = 0;
        for (size_t k = 0; k < w->blen; k++) {
            if (w->buf[k] != '\0')
                continue;
            on_message(s, i, w->buf + start);
            start = k + 1;
        }
        memmove(w->buf, w->buf + start, w->blen - start);
        w->blen -= start;
        if (w->blen == sizeof(w->buf))
            w->blen = 0; /* a message longer than any we send: drop it */
    }
}

static void reap(sup *s)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        uint32_t i = 0;
        while (i < s->n && s->w[i].pid != pid)
            i++;
        if (i == s->n)
            continue;
        worker *w = &s->w[i];
        char how[32];
        describe_status(status, how, sizeof(how));
        if (w->fd >= 0) {
            read_worker(s, i);
            if (w->fd >= 0)
                close(w->fd);
            w->fd = -1;
        }
        w->pid = 0;
        bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (s->stopping) {
            if (!clean)
                s->exit_code = 1;
            log_info("worker stopped", "index=%u pid=%d %s", i, (int)pid, how);
            continue;
        }
        log_error("worker exited; starting it again", "index=%u pid=%d %s restart_in_ms=%d", i,
                  (int)pid, how, WORKERS_RESTART_MS);
        if (!w->ready && ++w->failed_starts >= WORKERS_MAX_FAILED_STARTS) {
            log_error("worker keeps failing to start; stopping", "index=%u failed_starts=%u", i,
                      w->failed_starts);
            begin_stop(s, SIGTERM, 1);
            continue;
        }
        w->restart_ms = host_mono_ms() + WORKERS_RESTART_MS;
        if (s->ready_sent) {
            char msg[64];
            snprintf(msg, sizeof(msg), "STATUS=worker %u restarting", i);
            sysd_notify(msg);
        }
    }
}

static void on_signal(sup *s, int sig)
{
    switch (sig) {
    case SIGCHLD:
        reap(s);
        break;
    case SIGTERM:
    case SIGINT:
        begin_stop(s, sig, 0);
        break;
    case SIGHUP:
        if (s->stopping)
            break;
        /* Each worker reads the configuration again and logs what it applied; workers
         * started from now on do the same at start. */
        s->reloaded = true;
        log_info("reload: passing SIGHUP to the workers", NULL);
        send_all(s, SIGHUP);
        break;
    }
}

/* Timers: restarts, keep-alives to systemd, hung workers, the stop deadline. Returns the ms
 * until the next one is due (at most 1000). */
static int run_timers(sup *s)
{
    uint64_t now = host_mono_ms(), next = now + 1000;
    for (uint32_t i = 0; i < s->n; i++) {
        worker *w = &s->w[i];
        if (w->restart_ms && !s->stopping) {
            if (w->restart_ms <= now)
                start_worker(s, i);
            else if (w->restart_ms < next)
                next = w->restart_ms;
        }
        uint64_t hung_ms =
            s->watchdog_ms > WORKERS_HUNG_MIN_MS ? s->watchdog_ms : WORKERS_HUNG_MIN_MS;
        /* A worker started just above heard from "after" `now`: compare without subtracting. */
        if (s->watchdog_ms && w->pid > 0 && !w->hung && !s->stopping &&
            now > w->alive_ms + hung_ms) {
            w->hung = true;
            log_error("worker not responding; aborting it", "index=%u pid=%d silent_ms=%llu", i,
                      (int)w->pid, (unsigned long long)(now - w->alive_ms));
            kill(w->pid, SIGABRT);
            /* A stopped process (SIGSTOP, a debugger) takes the SIGABRT once it runs again. */
            kill(w->pid, SIGCONT);
        }
    }
    if (s->watchdog_ms) {
        if (s->next_watchdog_ms <= now) {
            sysd_notify("WATCHDOG=1");
            s->next_watchdog_ms = now + s->watchdog_ms / 2;
        }
        if (s->next_watchdog_ms < next)
            next = s->next_watchdog_ms;
    }
    if (s->stopping) {
        if (s->stop_deadline_ms <= now) {
            log_warn("workers did not stop in time; killing them", NULL);
            send_all(s, SIGKILL);
            s->exit_code = 1;
            s->stop_deadline_ms = now + 1000;
        }
        if (s->stop_deadline_ms < next)
            next = s->stop_deadline_ms;
    }
    return next > now ? (int)(next - now) : 0;
}

static uint32_t running(const sup *s)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < s->n; i++)
        n += s->w[i].pid > 0;
    return n;
}

int workers_supervise(const cfg *c, workers_main_fn main_fn, void *ud)
{
    static sup s;
    memset(&s, 0, sizeof(s));
    s.c = c;
    s.main_fn = main_fn;
    s.ud = ud;
    s.n = c->workers;
    s.self = getpid();
    for (uint32_t i = 0; i < s.n; i++)
        s.w[i].fd = -1;
    char err[256];
    if (reuseport_listen(c->listen_host, c->listen_port, s.n, s.listen, err, sizeof(err)) < 0) {
        log_error("cannot listen", "host=%s port=%u err=\"%s\"", c->listen_host, c->listen_port,
                  err);
        return 1;
    }
    sigemptyset(&s.blocked);
    sigaddset(&s.blocked, SIGCHLD);
    sigaddset(&s.blocked, SIGTERM);
    sigaddset(&s.blocked, SIGINT);
    sigaddset(&s.blocked, SIGHUP);
    sigprocmask(SIG_BLOCK, &s.blocked, &s.old_mask);
    s.sigfd = signalfd(-1, &s.blocked, SFD_CLOEXEC | SFD_NONBLOCK);
    if (s.sigfd < 0) {
        log_error("cannot start the supervisor", "err=\"%s\"", strerror(errno));
        for (uint32_t i = 0; i < s.n; i++)
            close(s.listen[i]);
        sigprocmask(SIG_SETMASK, &s.old_mask, NULL);
        return 1;
    }
    s.watchdog_ms = sysd_watchdog_usec() / 1000;
    log_info("supervising workers", "workers=%u host=%s port=%u pid=%d", s.n, c->listen_host,
             c->listen_port, (int)s.self);
    for (uint32_t i = 0; i < s.n; i++)
        start_worker(&s, i);
    while (!s.stopping || running(&s) > 0) {
        int timeout = run_timers(&s);
        struct pollfd p[1 + REUSEPORT_MAX];
        uint32_t who[1 + REUSEPORT_MAX];
        nfds_t np = 0;
        p[np++] = (struct pollfd){.fd = s.sigfd, .events = POLLIN};
        for (uint32_t i = 0; i < s.n; i++)
            if (s.w[i].fd >= 0) {
                who[np] = i;
                p[np++] = (struct pollfd){.fd = s.w[i].fd, .events = POLLIN};
            }
        if (poll(p, np, timeout) < 0 && errno != EINTR) {
            log_error("poll", "err=\"%s\"", strerror(errno));
            begin_stop(&s, SIGTERM, 1);
        }
        for (nfds_t k = 1; k < np; k++)
            if (p[k].revents)
                read_worker(&s, who[k]);
        struct signalfd_siginfo si;
        while (read(s.sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
            on_signal(&s, (int)si.ssi_signo);
        check_ready(&s);
    }
    for (uint32_t i = 0; i < s.n; i++)
        close(s.listen[i]);
    close(s.sigfd);
    sigprocmask(SIG_SETMASK, &s.old_mask, NULL);
    log_info("stopped", "exit=%d", s.exit_code);
    return s.exit_code;
}
