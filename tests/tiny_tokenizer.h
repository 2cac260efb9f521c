// A CLIP-format tokenizer folder (vocab.json + merges.txt) small enough for the tiny models'
// 1000-token vocabulary, written into this test's temp folder: the 512 byte tokens, two merges
// ("do", "dog</w>"), filler, and BOS 998 / EOS 999. Returns the folder, or NULL.
#pragma once

const char *tiny_tokenizer(void);
