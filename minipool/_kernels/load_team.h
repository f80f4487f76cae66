/* A team of threads that does not wait for a missing member.
 *
 * Why: an OpenMP parallel region ends in a barrier that every thread of the
 * team must reach.  When another process shares a core with one of our
 * threads, the operating system deschedules that thread for whole time
 * slices, and every region waits for it -- even when the others have already
 * done all the work.  Here the caller publishes a job of numbered chunks,
 * helpers and caller claim chunks from one atomic counter, and the caller
 * returns as soon as every *claimed* chunk is finished: a helper that wakes
 * late finds the counter exhausted and goes back to sleep, having touched
 * nothing.  Idle helpers sleep on a condition variable (they never spin), so
 * they leave their core to whoever needs it between jobs.  On Linux each job
 * keeps the helpers off the caller's core, and a caller left waiting for a
 * claimed chunk moves its helper onto its own core (see "Where the helpers
 * run"): without that the helper shared the caller's core and added nothing.
 *
 * Bits: a chunk's result must depend only on its index (never on which thread
 * runs it); ``worker`` (0 for the caller, 1.. for helpers) only selects
 * scratch memory.  Then any team size, any lateness, gives the same bits.
 *
 * One team per extension module that includes this header (static state).
 * One job at a time: a second thread calling in while a job runs does its
 * own job alone.  After fork() the child starts without helpers and makes new
 * ones when first needed.  A failed pthread_create just means fewer helpers.
 */
#ifndef MINIPOOL_LOAD_TEAM_H
#define MINIPOOL_LOAD_TEAM_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sched.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stddef.h>
#include <time.h>
/* Py_ssize_t: included after Python.h, as Cython's generated C does */

#define MP_TEAM_MAX_HELPERS 63

typedef void (*mp_chunk_fn)(void *context, Py_ssize_t chunk, int worker) /* noexcept nogil */;

typedef struct {
    pthread_mutex_t lock;            /* guards the job description and `sleeping` */
    pthread_cond_t job_posted;       /* helpers wait here for a new generation */
    pthread_cond_t job_finished;     /* the caller waits here for claimed chunks */
    pthread_mutex_t caller;          /* held by the one thread running a job */
    /* the job (written under `lock`, read by a helper under `lock`) */
    uint32_t generation;
    mp_chunk_fn fn;
    void *context;
    Py_ssize_t chunks;
    int wanted_helpers;              /* helpers that may join this job */
    /* (generation << 32) | next unclaimed chunk: a claim for an old job fails */
    _Atomic uint64_t claim;
    _Atomic Py_ssize_t finished;     /* chunks of the current job done */
    int helpers;                     /* helper threads started */
    int forked;                      /* set in a fork child: helpers are gone */
} mp_team_t;

static mp_team_t mp_team = {
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER,
    PTHREAD_MUTEX_INITIALIZER, 0, NULL, NULL, 0, 0, 0, 0, 0, 0,
};
static int mp_team_atfork_registered = 0;
#ifdef __linux__
#include <sys/syscall.h>
#include <unistd.h>
/* Each helper's kernel thread id (0 until it has started), for ``mp_team_pull_helpers``. */
static _Atomic pid_t mp_team_tid[MP_TEAM_MAX_HELPERS + 1];
#endif
/* Tests: a helper sleeps this long between taking a job and claiming its first
 * chunk, as if the OS had descheduled it there. */
static _Atomic long mp_team_helper_delay_us = 0;
/* Diagnostics (benchmarks): jobs run, chunks the helpers ran, and the time the
 * caller spent in jobs and waiting for a helper's claimed chunk, in ns. */
static _Atomic uint64_t mp_team_stat_jobs = 0, mp_team_stat_helper_chunks = 0;
static _Atomic uint64_t mp_team_stat_job_ns = 0, mp_team_stat_wait_ns = 0;

static uint64_t mp_team_now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* Claim and run chunks of job `generation` until none is left; returns chunks run. */
static Py_ssize_t mp_team_work(uint32_t generation, mp_chunk_fn fn, void *context,
                               Py_ssize_t chunks, int worker) {
    Py_ssize_t ran = 0;
    uint64_t seen = atomic_load_explicit(&mp_team.claim, memory_order_acquire);
    for (;;) {
        if ((uint32_t)(seen >> 32) != generation || (Py_ssize_t)(seen & 0xffffffffu) >= chunks)
            break;  /* another job, or every chunk taken */
        if (!atomic_compare_exchange_weak_explicit(&mp_team.claim, &seen, seen + 1,
                                                   memory_order_acq_rel, memory_order_acquire))
            continue;  /* `seen` now holds the current value */
        fn(context, (Py_ssize_t)(seen & 0xffffffffu), worker);
        ran++;
        /* release: the chunk's writes are visible to the caller that sees the count */
        if (atomic_fetch_add_explicit(&mp_team.finished, 1, memory_order_acq_rel) + 1 == chunks) {
            pthread_mutex_lock(&mp_team.lock);   /* the caller may be asleep: wake it */
            pthread_cond_broadcast(&mp_team.job_finished);
            pthread_mutex_unlock(&mp_team.lock);
        }
        seen = atomic_load_explicit(&mp_team.claim, memory_order_acquire);
    }
    return ran;
}

static void *mp_team_helper(void *arg) {
    int worker = (int)(intptr_t)arg;
#ifdef __linux__
    atomic_store_explicit(&mp_team_tid[worker], (pid_t)syscall(SYS_gettid), memory_order_release);
#endif
    uint32_t done_generation = 0;  /* so a new helper joins the job that made it */
    pthread_mutex_lock(&mp_team.lock);
    for (;;) {
        while (mp_team.generation == done_generation || worker > mp_team.wanted_helpers)
        {
            if (mp_team.generation != done_generation)
                done_generation = mp_team.generation;  /* a job for fewer helpers: skip it */
            pthread_cond_wait(&mp_team.job_posted, &mp_team.lock);
        }
        uint32_t generation = done_generation = mp_team.generation;
        mp_chunk_fn fn = mp_team.fn;
        void *context = mp_team.context;
        Py_ssize_t chunks = mp_team.chunks;
        pthread_mutex_unlock(&mp_team.lock);
        long delay = atomic_load_explicit(&mp_team_helper_delay_us, memory_order_relaxed);
        if (delay > 0) {
            struct timespec pause = {delay / 1000000, (delay % 1000000) * 1000};
            nanosleep(&pause, NULL);
        }
        Py_ssize_t ran = mp_team_work(generation, fn, context, chunks, worker);
        atomic_fetch_add_explicit(&mp_team_stat_helper_chunks, (uint64_t)ran, memory_order_relaxed);
        pthread_mutex_lock(&mp_team.lock);
    }
    return NULL;
}

static void mp_team_after_fork_child(void) {
    /* Only the forking thread exists in the child: helpers are gone and the
     * locks may have been held by them at the fork. */
    pthread_mutex_init(&mp_team.lock, NULL);
    pthread_mutex_init(&mp_team.caller, NULL);
    pthread_cond_init(&mp_team.job_posted, NULL);
    pthread_cond_init(&mp_team.job_finished, NULL);
    mp_team.helpers = 0;
#ifdef __linux__
    for (int w = 0; w <= MP_TEAM_MAX_HELPERS; w++)  /* the parent's threads, not ours */
        atomic_store_explicit(&mp_team_tid[w], 0, memory_order_relaxed);
#endif
}

/* Start helpers until there are `wanted` (under `lock`); returns how many exist. */
static int mp_team_grow(int wanted) {
    sigset_t all, previous;
    if (!mp_team_atfork_registered) {
        if (pthread_atfork(NULL, NULL, mp_team_after_fork_child) != 0)
            return mp_team.helpers;
        mp_team_atfork_registered = 1;
    }
    /* helpers inherit this mask: asynchronous signals (SIGINT, ...) go to the
     * interpreter's threads; faults still reach the faulting helper */
    sigfillset(&all);
    sigdelset(&all, SIGSEGV);
    sigdelset(&all, SIGBUS);
    sigdelset(&all, SIGFPE);
    sigdelset(&all, SIGILL);
    sigdelset(&all, SIGABRT);
    pthread_sigmask(SIG_SETMASK, &all, &previous);
    while (mp_team.helpers < wanted) {
        pthread_t thread;
        pthread_attr_t attr;
        int failed;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        failed = pthread_create(&thread, &attr, mp_team_helper, (void *)(intptr_t)(mp_team.helpers + 1));
        pthread_attr_destroy(&attr);
        if (failed)
            break;
        mp_team.helpers++;
    }
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    return mp_team.helpers;
}

/* Where the helpers run (Linux).  A helper that sleeps between jobs is woken
 * onto a busy core, most often the caller's own (no core is idle when another
 * process keeps one busy), and then only takes turns with the caller: measured,
 * the helper ran half the chunks while the process got one core in all.  So
 * each job keeps the helpers off the caller's core (``mp_team_place_helpers``;
 * one system call when the caller has moved, else none): there they take the
 * share of the other core that the scheduler gives them.  And when the caller
 * has run out of chunks while a helper still holds one, the helper is most
 * often descheduled (the other process's turn on that core): the caller moves
 * it onto its own core, which it leaves idle while it sleeps, and the kernel
 * migrates a waiting thread at once (``mp_team_pull_helpers``). */
#ifdef __linux__
static int mp_team_kept_off = -2;  /* the core the helpers are kept off; -1 none, -2 unknown */
static cpu_set_t mp_team_kept_within;  /* the caller's CPU set when they were placed */

static int mp_team_set_helper_cpus(int helpers, const cpu_set_t *cpus) {
    int w, all = 1;
    for (w = 1; w <= helpers; w++) {
        pid_t tid = atomic_load_explicit(&mp_team_tid[w], memory_order_acquire);
        if (tid > 0) sched_setaffinity(tid, sizeof(cpu_set_t), cpus);
        else all = 0;  /* not started yet: placed at a later job */
    }
    return all;
}

static void mp_team_place_helpers(int helpers) {
    /* The caller's set is read every job (one cheap system call, jobs are long):
     * a user who narrows the process's CPUs later also narrows the helpers'. */
    cpu_set_t within, cpus;
    int cpu = sched_getcpu();
    if (cpu < 0 || cpu >= CPU_SETSIZE || sched_getaffinity(0, sizeof(cpu_set_t), &within) != 0)
        return;
    if (cpu == mp_team_kept_off && CPU_EQUAL(&within, &mp_team_kept_within)) return;
    cpus = within;
    if (CPU_ISSET(cpu, &cpus) && CPU_COUNT(&cpus) > 1) CPU_CLR(cpu, &cpus);
    mp_team_kept_within = within;
    mp_team_kept_off = mp_team_set_helper_cpus(helpers, &cpus) ? cpu : -2;
}

static int mp_team_pull_helpers(int helpers) {
    cpu_set_t here;
    int cpu = sched_getcpu();
    if (cpu < 0 || cpu >= CPU_SETSIZE) return 0;
    CPU_ZERO(&here);
    CPU_SET(cpu, &here);
    mp_team_set_helper_cpus(helpers, &here);
    mp_team_kept_off = -2;  /* placed again at the next job */
    return 1;
}

/* Every core of the caller's set again (tests, experiments); under ``lock``. */
static void mp_team_unplace_helpers(void) {
    cpu_set_t cpus;
    if (sched_getaffinity(0, sizeof(cpu_set_t), &cpus) == 0)
        mp_team_set_helper_cpus(mp_team.helpers, &cpus);
    mp_team_kept_off = -2;
}
#else  /* elsewhere the scheduler places the helpers */
static void mp_team_place_helpers(int helpers) { (void)helpers; }
static int mp_team_pull_helpers(int helpers) { (void)helpers; return 0; }
static void mp_team_unplace_helpers(void) {}
#endif

/* How long the caller spins for a helper's last chunk before it pulls the
 * helper over (a helper that is running finishes within a chunk's time). */
static _Atomic long mp_team_pull_after_ns = 100000;
static _Atomic uint64_t mp_team_stat_pulls = 0;
static _Atomic int mp_team_place = 1;  /* keep helpers off the caller's core (experiments) */

/* Run fn(context, c, worker) for every c in [0, chunks) on the caller and up to
 * threads - 1 helpers; return when every chunk is done.  Chunks may run in any
 * order, each exactly once; `worker` < threads. */
static void mp_team_run(mp_chunk_fn fn, void *context, Py_ssize_t chunks, int threads) {
    Py_ssize_t c;
    int helpers = threads - 1;
    if (helpers > MP_TEAM_MAX_HELPERS) helpers = MP_TEAM_MAX_HELPERS;
    if (chunks <= 0) return;
    if (helpers < 1 || chunks == 1 || chunks > 0xffffffffu
            || pthread_mutex_trylock(&mp_team.caller) != 0) {
        for (c = 0; c < chunks; c++) fn(context, c, 0);  /* alone: busy team or nothing to share */
        return;
    }
    uint64_t start = mp_team_now_ns();
    pthread_mutex_lock(&mp_team.lock);
    if (mp_team_grow(helpers) < helpers) helpers = mp_team.helpers;
    if (atomic_load_explicit(&mp_team_place, memory_order_relaxed)) mp_team_place_helpers(helpers);
    uint32_t generation = ++mp_team.generation;
    mp_team.fn = fn;
    mp_team.context = context;
    mp_team.chunks = chunks;
    mp_team.wanted_helpers = helpers;
    atomic_store_explicit(&mp_team.finished, 0, memory_order_relaxed);
    atomic_store_explicit(&mp_team.claim, (uint64_t)generation << 32, memory_order_release);
    if (helpers > 0) pthread_cond_broadcast(&mp_team.job_posted);
    pthread_mutex_unlock(&mp_team.lock);

    mp_team_work(generation, fn, context, chunks, 0);

    uint64_t alone = mp_team_now_ns();
    if (atomic_load_explicit(&mp_team.finished, memory_order_acquire) < chunks) {
        /* a helper still runs a chunk it claimed: give it a chunk's time, then
         * pull it onto this core and sleep until the last chunk ends */
        long patience = atomic_load_explicit(&mp_team_pull_after_ns, memory_order_relaxed);
        int pulled = 0;
        while (atomic_load_explicit(&mp_team.finished, memory_order_acquire) < chunks
               && (long)(mp_team_now_ns() - alone) < patience)
            ;
        if (atomic_load_explicit(&mp_team.finished, memory_order_acquire) < chunks) {
            if (patience >= 0) pulled = mp_team_pull_helpers(helpers);
            atomic_fetch_add_explicit(&mp_team_stat_pulls, (uint64_t)pulled, memory_order_relaxed);
            pthread_mutex_lock(&mp_team.lock);
            while (atomic_load_explicit(&mp_team.finished, memory_order_acquire) < chunks)
                pthread_cond_wait(&mp_team.job_finished, &mp_team.lock);
            pthread_mutex_unlock(&mp_team.lock);
        }
    }
    uint64_t end = mp_team_now_ns();
    atomic_fetch_add_explicit(&mp_team_stat_jobs, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&mp_team_stat_job_ns, end - start, memory_order_relaxed);
    atomic_fetch_add_explicit(&mp_team_stat_wait_ns, end - alone, memory_order_relaxed);
    pthread_mutex_unlock(&mp_team.caller);
}

/* The diagnostics above, read and reset: {jobs, helper chunks, job ns, wait ns}. */
static void mp_team_take_stats(uint64_t *out) {
    out[0] = atomic_exchange_explicit(&mp_team_stat_jobs, 0, memory_order_relaxed);
    out[1] = atomic_exchange_explicit(&mp_team_stat_helper_chunks, 0, memory_order_relaxed);
    out[2] = atomic_exchange_explicit(&mp_team_stat_job_ns, 0, memory_order_relaxed);
    out[3] = atomic_exchange_explicit(&mp_team_stat_wait_ns, 0, memory_order_relaxed);
    out[4] = atomic_exchange_explicit(&mp_team_stat_pulls, 0, memory_order_relaxed);
}

static void mp_team_set_pull_after_ns(long ns, int place) {
    atomic_store_explicit(&mp_team_pull_after_ns, ns, memory_order_relaxed);
    atomic_store_explicit(&mp_team_place, place, memory_order_relaxed);
    if (!place) {  /* every core again */
        pthread_mutex_lock(&mp_team.lock);
        mp_team_unplace_helpers();
        pthread_mutex_unlock(&mp_team.lock);
    }
}

static void mp_team_set_helper_delay_us(long delay) {
    atomic_store_explicit(&mp_team_helper_delay_us, delay, memory_order_relaxed);
}

/* Helper threads started so far (for tests). */
static int mp_team_helpers(void) {
    int n;
    pthread_mutex_lock(&mp_team.lock);
    n = mp_team.helpers;
    pthread_mutex_unlock(&mp_team.lock);
    return n;
}

#endif
