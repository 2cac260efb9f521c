#include "engine/train/files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/core/error.h"

int train_mkdir_p(const char *dir) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf) return sl_error(dir, "path too long");
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) return sl_error(buf, "cannot create folder: %s", strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST) return sl_error(buf, "cannot create folder: %s", strerror(errno));
    struct stat st;
    if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode)) return sl_error(buf, "exists and is not a folder");
    return 0;
}

int train_rmtree(const char *path) {
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
            rc = train_rmtree(sub);
        }
        closedir(d);
        if (rc) return rc;
        if (rmdir(path) != 0) return sl_error(path, "cannot remove: %s", strerror(errno));
        return 0;
    }
    if (unlink(path) != 0) return sl_error(path, "cannot remove: %s", strerror(errno));
    return 0;
}

int train_check_writable(const char *dir) {
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

int train_fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return sl_error(dir, "cannot open folder: %s", strerror(errno));
    fsync(fd);
    close(fd);
    return 0;
}
