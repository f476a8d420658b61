/* fuzz_ckpt.c: libFuzzer target for the checkpoint reader (train/ckptfile.c)
 * and, when a file reads, what qat does with it (train/checkpoint.c): the
 * stored config parsed and its model built (if small, see fuzz_util.h), the
 * weights loaded into it, then the optimizer state and training position.
 * qat_ckpt_read takes a path, so each input is written to the process's temp
 * folder first. The CRC-32 would stop nearly every mutation at the door, so
 * the target repairs it (for all sizes but one in 16, which keep theirs):
 * the fuzzer then explores the record checks behind it. Build and run with
 * scripts/fuzz ckpt SECONDS. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "ckptfile.h"
#include "netcfg.h"

#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const names[] = {"in.ckpt"};

/* What qat eval, export and --resume do with a checkpoint that reads. */
static void use(const qat_ckpt *ck)
{
    const char *text;
    size_t len;
    if (qat_checkpoint_cfg(ck, &text, &len) != QAT_OK) return;
    qat_cfg c;
    if (qat_cfg_parse_text(&c, "in.ckpt (stored config)", text, len) != QAT_OK) return;
    qat_net_cfg net;
    qat_layer *layers;
    int n;
    if (qat_netcfg_read(&c, &net, &layers, &n) == QAT_OK) {
        qat_model m;
        if (!fuzz_model_small(net.c, net.h, net.w, layers, n)) {
            free(layers);
        } else if (qat_model_build(&m, layers, n, net.c, net.h, net.w, 2, 1, net.seed) == QAT_OK) {
            if (qat_checkpoint_load_model(ck, &m) == QAT_OK) {
                qat_optimizer o;
                qat_train_pos pos;
                if (qat_optimizer_init(&o, &m, &net.optim) == QAT_OK) {
                    qat_checkpoint_load_train(ck, &m, &o, &pos);
                    qat_optimizer_free(&o);
                }
            }
            qat_model_free(&m);
        }
    }
    qat_cfg_free(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (4u << 20)) return 0;
    const char *dir = fuzz_dir(names, 1);
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    if (size >= 20 && size % 16 != 0) {
        uLong crc = crc32(crc32(0, Z_NULL, 0), buf, (uInt)(size - 4));
        for (int k = 0; k < 4; k++) buf[size - 4 + k] = (uint8_t)(crc >> (8 * k));
    }
    fuzz_write(names[0], buf, size, 0);
    free(buf);
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, names[0]);
    qat_ckpt ck;
    if (qat_ckpt_read(&ck, path) == QAT_OK) {
        use(&ck);
        qat_ckpt_free(&ck);
    }
    return 0;
}
