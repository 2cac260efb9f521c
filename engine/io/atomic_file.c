#include "engine/io/atomic_file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/core/error.h"
#include "engine/io/folders.h"

static int write_all(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n > 0) {
        ssize_t k = write(fd, p, n > (1u << 30) ? (1u << 30) : n);
        if (k < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

// ---- stale temporaries

// The PID of NAME.tmp.PID, or 0 when name is not such a temporary.
static long temporary_pid(const char *name) {
    const char *t = strstr(name, ".tmp.");
    if (!t) return 0;
    while (strstr(t + 1, ".tmp.")) t = strstr(t + 1, ".tmp.");   // the last one
    const char *d = t + 5;
    if (!*d) return 0;
    long pid = 0;
    for (; *d; d++) {
        if (*d < '0' || *d > '9' || pid > 100000000) return 0;
        pid = pid * 10 + (*d - '0');
    }
    return pid;
}

int is_atomic_temporary(const char *name) { return temporary_pid(name) > 0; }

void remove_stale_temporaries(const char *dir) {
    static char *done[64];   // the folders already cleaned by this process (single-threaded writers)
    static int n_done;
    for (int i = 0; i < n_done; i++)
        if (!strcmp(done[i], dir)) return;
    if (n_done < 64) done[n_done++] = sl_strdup(dir);
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        long pid = temporary_pid(e->d_name);
        if (pid <= 0 || pid == (long)getpid()) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;   // its writer still runs (or is not ours to judge)
        char path[4096];
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= sizeof path) continue;
        remove_tree(path);   // best effort: a temporary we cannot remove is only clutter
    }
    closedir(d);
}

static void clean_parent(const char *path) {
    char *copy = sl_strdup(path);
    remove_stale_temporaries(dirname(copy));
    free(copy);
}

// ---- files

int atomic_write(const char *path, const void *const *bufs, const size_t *lens, int n) {
    clean_parent(path);
    size_t tlen = strlen(path) + 32;
    char *tmp = sl_malloc(tlen);
    snprintf(tmp, tlen, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        sl_error(path, "cannot create %s: %s", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) rc = write_all(fd, bufs[i], lens[i]);
    if (rc == 0 && fsync(fd) != 0) rc = -1;
    if (rc != 0) sl_error(path, "cannot write %s: %s", tmp, strerror(errno));
    if (close(fd) != 0 && rc == 0) rc = sl_error(path, "cannot write %s: %s", tmp, strerror(errno));
    if (rc == 0 && rename(tmp, path) != 0) rc = sl_error(path, "cannot rename %s into place: %s", tmp, strerror(errno));
    if (rc != 0) unlink(tmp);
    if (rc == 0) {
        // make the rename itself durable
        char *dir = sl_strdup(path);
        int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
        free(dir);
    }
    free(tmp);
    return rc;
}

// ---- folders

static staged_folder *g_pending;   // the folder being staged, removed if the process exits first

static void remove_pending(void) {
    if (g_pending) staged_folder_abort(g_pending);
}

int staged_folder_begin(staged_folder *s, const char *dir) {
    if ((size_t)snprintf(s->final, sizeof s->final, "%s", dir) >= sizeof s->final) return sl_error(dir, "path too long");
    size_t len = strlen(s->final);
    while (len > 1 && s->final[len - 1] == '/') s->final[--len] = 0;   // "out/" names the folder out
    snprintf(s->staging, sizeof s->staging, "%s.tmp.%ld", s->final, (long)getpid());
    clean_parent(s->final);
    if (remove_tree(s->staging) != 0 || mkdir_p(s->staging) != 0) return -1;
    static int registered;
    if (!registered) atexit(remove_pending), registered = 1;
    g_pending = s;
    return 0;
}

int staged_folder_commit(staged_folder *s) {
    char aside[4000];
    snprintf(aside, sizeof aside, "%s.old.tmp.%ld", s->final, (long)getpid());
    struct stat st;
    int had = lstat(s->final, &st) == 0;
    if (had && !S_ISDIR(st.st_mode)) return sl_error(s->final, "exists and is not a folder");
    if (had && rename(s->final, aside) != 0) return sl_error(s->final, "cannot move the old folder aside: %s", strerror(errno));
    if (rename(s->staging, s->final) != 0) {
        int e = errno;
        if (had) rename(aside, s->final);   // put the old one back
        return sl_error(s->final, "cannot rename %s into place: %s", s->staging, strerror(e));
    }
    g_pending = NULL;
    char *copy = sl_strdup(s->final);
    fsync_folder(dirname(copy));
    free(copy);
    if (had) remove_tree(aside);
    return 0;
}

void staged_folder_abort(staged_folder *s) {
    if (g_pending == s) g_pending = NULL;
    remove_tree(s->staging);
}
