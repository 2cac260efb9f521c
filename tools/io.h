// Small file helpers the subcommands share. Each returns 0, or -1 with sl_error naming the path.
#pragma once

// 1 when s ends with suffix (ASCII case-insensitive: ".PNG" is a PNG too).
int ends_with(const char *s, const char *suffix);
// Creates dir and any missing parents (an existing folder is fine).
int mkdir_p(const char *dir);
// Copies the file `from` to `to` (written atomically: a crash leaves no half file).
int copy_file(const char *from, const char *to);
// Copies every regular file directly inside the folder `from` into the folder `to`.
int copy_folder_files(const char *from, const char *to);
