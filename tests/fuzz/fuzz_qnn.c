/* fuzz_qnn.c: libFuzzer target for the .qnn reader (and, when a file loads,
 * one run of it on a fixed image with the scalar kernels). Build and run with
 * scripts/fuzz-qnn SECONDS (clang -fsanitize=fuzzer,address,undefined). The
 * checksum would stop nearly every mutation at the door, so the target
 * repairs it first: the fuzzer then explores the field checks behind it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qatrt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20)) return 0;
    uint8_t *buf = aligned_alloc(64, (size + 64) / 64 * 64);
    if (!buf) return 0;
    memcpy(buf, data, size);
    if (size >= 8 && (data[0] & 1)) { /* half of the inputs keep their checksum as is */
        uint32_t c = qatrt_crc32(0, buf, size - 4);
        for (int k = 0; k < 4; k++) buf[size - 4 + k] = (uint8_t)(c >> (8 * k));
    }
    qatrt_model m;
    qatrt_error err;
    if (qatrt_load(&m, buf, size, &err) == QATRT_OK) {
        size_t isz = (size_t)m.c * m.h * m.w, ws = qatrt_workspace_size(&m, 2);
        if (isz <= (1u << 16) && ws && ws <= (64u << 20) && m.nclass <= 4096) {
            uint8_t *img = malloc(2 * isz);
            void *w = aligned_alloc(64, (ws + 63) / 64 * 64);
            int32_t *z = malloc(sizeof(int32_t) * 2 * (size_t)m.nclass);
            if (img && w && z) {
                for (size_t i = 0; i < 2 * isz; i++) img[i] = (uint8_t)(i * 37);
                if (qatrt_prepare(&m, w, ws) == QATRT_OK)
                    qatrt_run(&m, qatrt_kernels_for(QATRT_ISA_SCALAR), w, ws, img, 2, z);
            }
            free(img);
            free(w);
            free(z);
        }
    }
    free(buf);
    return 0;
}
