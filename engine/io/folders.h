// Folders: create with parents, remove a tree, check a folder can be written, fsync a folder,
// copy files. Each returns 0, or -1 with sl_error naming the path.
#pragma once

// Creates dir and any missing parents (an existing folder is fine).
int mkdir_p(const char *dir);
// Removes path and everything under it (a missing path is fine; symlinks are not followed).
int remove_tree(const char *path);
// Writes and removes a probe file in dir: "not writable" / "disk full?" before any work is done.
int folder_check_writable(const char *dir);
// Makes a rename or a new file inside dir durable.
int fsync_folder(const char *dir);
// Copies the file `from` to `to` (written atomically: a crash leaves no half file).
int copy_file(const char *from, const char *to);
// Copies every regular file directly inside the folder `from` into the folder `to`.
int copy_folder_files(const char *from, const char *to);
