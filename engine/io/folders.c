#include "engine/io/folders.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/core/error.h"
#include "engine/io/atomic_file.h"
#include "engine/io/file_read.h"
#include "engine/io/model_files.h"

int mkdir_p(const char *dir) {
    char buf[4096];
    if ((size_t)snprintf(buf, sizeof buf, "%s", dir) >= sizeof buf) return sl_error(dir, "path too long");
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) return sl_error(dir, "cannot create folder: %s", strerror(errno));
            *p = '/';
        }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return sl_error(dir, "cannot create folder: %s", strerror(errno));
    if (!path_is_dir(buf)) return sl_error(dir, "exists and is not a folder");
    return 0;
}

int copy_file(const char *from, const char *to) {
    size_t n;
    char *buf = read_file(from, &n, (size_t)1 << 32, "file");
    if (!buf) return -1;
    const void *bufs[1] = {buf};
    int rc = atomic_write(to, bufs, &n, 1);
    free(buf);
    return rc;
}

int copy_folder_files(const char *from, const char *to) {
    DIR *d = opendir(from);
    if (!d) return sl_error(from, "cannot open folder: %s", strerror(errno));
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d))) {
        char a[4096], b[4096];
        struct stat st;
        if ((size_t)snprintf(a, sizeof a, "%s/%s", from, e->d_name) >= sizeof a) continue;
        if (stat(a, &st) != 0 || !S_ISREG(st.st_mode)) continue;   // ., .., subfolders
        snprintf(b, sizeof b, "%s/%s", to, e->d_name);
        rc = copy_file(a, b);
    }
    closedir(d);
    return rc;
}

int remove_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? 0 : sl_error(path, "cannot stat: %s", strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (!d) return sl_error(path, "cannot open: %s", strerror(errno));
        struct dirent *de;
        int rc = 0;
        while (rc == 0 && (de = readdir(d))) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
            char sub[4096];
            snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
            rc = remove_tree(sub);
        }
        closedir(d);
        if (rc) return rc;
        if (rmdir(path) != 0) return sl_error(path, "cannot remove: %s", strerror(errno));
        return 0;
    }
    if (unlink(path) != 0) return sl_error(path, "cannot remove: %s", strerror(errno));
    return 0;
}

int folder_check_writable(const char *dir) {
    char probe[4096];
    snprintf(probe, sizeof probe, "%s/.singlora-write-test-%d", dir, (int)getpid());
    int fd = open(probe, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (fd < 0) return sl_error(dir, "output folder is not writable: %s", strerror(errno));
    int ok = write(fd, "x", 1) == 1;
    close(fd);
    unlink(probe);
    if (!ok) return sl_error(dir, "output folder is not writable (disk full?)");
    return 0;
}

int fsync_folder(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return sl_error(dir, "cannot open folder: %s", strerror(errno));
    fsync(fd);
    close(fd);
    return 0;
}
