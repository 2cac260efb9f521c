#include "engine/io/atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/core/error.h"

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

int atomic_write(const char *path, const void *const *bufs, const size_t *lens, int n) {
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
