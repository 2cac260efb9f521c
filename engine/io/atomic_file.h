// Writing a file so that a crash never leaves a half-written file under its final name:
// write to a temp file beside it (NAME.tmp.PID), fsync, rename over, fsync the directory. A
// process killed mid-write leaves its NAME.tmp.PID behind; the next write into that folder (by any
// process) removes the temporaries whose process is gone. Folders are staged the same way.
#pragma once
#include <stddef.h>

// Writes the n buffers in order as the new content of `path`. 0, or -1 with sl_error.
int atomic_write(const char *path, const void *const *bufs, const size_t *lens, int n);

// 1 when `name` (a file or folder name) is a temporary of this scheme: ends in .tmp.DIGITS.
int is_atomic_temporary(const char *name);
// Removes the temporaries (files or folders) in dir whose writing process no longer runs; once
// per folder and process (atomic_write and staged folders call it).
void remove_stale_temporaries(const char *dir);

// A folder written whole or not at all: build it in DIR.tmp.PID, then commit renames it to DIR
// (an existing DIR is moved aside first and removed after); abort (or the process exiting before
// commit, via atexit) removes the staging folder.
typedef struct {
    char final[3800], staging[3900];   // (room left for the files inside in 4096-byte paths)
} staged_folder;
// Creates the staging folder; s->staging is where to write. 0, or -1 with sl_error.
int staged_folder_begin(staged_folder *s, const char *dir);
int staged_folder_commit(staged_folder *s);
void staged_folder_abort(staged_folder *s);
