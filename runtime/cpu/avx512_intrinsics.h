// <immintrin.h> for the AVX-512 kernel files. GCC 12.2's masked AVX-512
// intrinsics pass _mm512_undefined_*() (`__m512 __Y = __Y;`) as the source of
// masked-off lanes, and -Wuninitialized / -Wmaybe-uninitialized then fire
// inside the header at every use (GCC bug 105593, fixed in 12.3). Silenced for
// the header's own lines only, so the kernels' code keeps the warnings. No
// function of our own here: each kernel file compiles it under its own flags.
#pragma once

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
