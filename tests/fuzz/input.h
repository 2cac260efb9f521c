// What the libFuzzer targets share: the parsers read files, so each input is written to a file
// of its own per process (under $TMPDIR) and the parser is pointed at it.
#pragma once
#include <stddef.h>
#include <stdint.h>

// Writes data[0..size) as the file `name` inside this process's fuzz folder; returns its path
// (a static buffer, valid until the next call).
const char *fuzz_write_input(const char *name, const uint8_t *data, size_t size);
// This process's fuzz folder (created on first use, emptied of what earlier inputs left).
const char *fuzz_dir(void);
// Warnings off: the targets see millions of bad inputs.
void fuzz_quiet(void);
