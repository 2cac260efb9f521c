// stb_image's implementation compiled from the system header with the fuzz build's ASan/UBSan, for
// fuzz_image only: linked ahead of -lstb, these definitions replace the library's, so an
// out-of-bounds write inside stb is caught where it happens instead of as a crash inputs later.
#if defined(__clang__)
#pragma clang diagnostic ignored "-Weverything"
#elif defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wall"
#pragma GCC diagnostic ignored "-Wextra"
#endif
#define STB_IMAGE_IMPLEMENTATION
#include <stb/stb_image.h>
