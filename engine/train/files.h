// Folder helpers of the trainer: create with parents, remove a tree, check a folder can be
// written, fsync a folder. Each returns 0, or -1 with sl_error naming the path.
#pragma once

int train_mkdir_p(const char *dir);
int train_rmtree(const char *path);
int train_check_writable(const char *dir);
int train_fsync_dir(const char *dir);
